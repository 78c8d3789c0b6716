"""The training loss: error-to-signal ratio (the seed's equation 7), optionally on pre-emphasised
signals and with a DC term (Wright and Valimaki's recipe for amp models)."""
import torch

_TINY = 1e-10  # keeps a silent batch from dividing by zero


def pre_emphasis(x, coefficient):
    """First-order high-pass y[n] = x[n] - a x[n-1] along time (the last axis)."""
    if coefficient == 0.0:
        return x
    return torch.cat([x[..., :1], x[..., 1:] - coefficient * x[..., :-1]], dim=-1)


def esr_loss(prediction, target, emphasis=0.0, dc_weight=0.0, per_clip=False):
    """ESR over the whole batch (errors and energies summed over every clip and sample), or
    with per_clip the mean of the clips' own ESRs, each clip's energy floored at a tenth of the
    batch's mean (so a quiet clip, or a Gain setting that plays quietly, counts as much as a
    loud one, and a near-silent one cannot dominate)."""
    p, t = pre_emphasis(prediction, emphasis), pre_emphasis(target, emphasis)
    energy = torch.sum(t ** 2) + _TINY
    if per_clip:
        clip_energy = torch.sum(t ** 2, dim=-1)
        floor = 0.1 * torch.mean(clip_energy) + _TINY
        loss = torch.mean(torch.sum((t - p) ** 2, dim=-1) / torch.clamp(clip_energy, min=floor))
    else:
        loss = torch.sum((t - p) ** 2) / energy
    if dc_weight:
        dc = torch.mean(target - prediction, dim=-1)
        loss = loss + dc_weight * torch.sum(dc ** 2) * target.shape[-1] / energy
    return loss
