"""The neural gain stage's learning side: data, model, loss, training, export, plots.

Needs torch (`pip install -e .[train]`); nothing else in klon does.
"""
try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover - depends on the install
    from klon.core.errors import KlonError
    raise KlonError("training needs torch, which is not installed: pip install -e '.[train]' "
                    "(torch 2.13.0)") from None
