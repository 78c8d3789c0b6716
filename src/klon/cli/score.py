"""`klon score`: the published models on the reference clips, scored as the original work did."""
import argparse

from klon.core.errors import KlonError


def add_parsers(commands) -> None:
    description = ("The published models, scored on the reference clips the way the original "
                   "work scored them.")
    s = commands.add_parser("score", help="score the published models on the reference clips "
                            "(ESR per Gain, beside the published numbers)",
                            description=description)
    s.add_argument("--data", default=None, help="folder holding klon-ltspice and "
                   "chowcentaur-models (default: ../shared/data, $KLON_DATA)")
    s.add_argument("--models", default=None,
                   help="folder of centaur_<G>.json (default: <data>/chowcentaur-models)")
    s.add_argument("--clips", type=int, default=400,
                   help="reference clips per Gain (default: 400)")


def score(args: argparse.Namespace) -> None:
    from klon.core.paths import find_data
    from klon.tools.scoring import markdown, score
    data = find_data(args.data)
    if data is None:
        raise KlonError("no reference data: pass --data (the folder holding klon-ltspice)")
    models = args.models or data / "chowcentaur-models"
    print(markdown(score(data, models, args.clips), args.clips))


HANDLERS = {"score": score}
