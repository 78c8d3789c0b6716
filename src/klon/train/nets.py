"""The neural gain stage: one recurrent layer (GRU or LSTM) and a Dense(1) output, as in the
seed's GRU-8.

The recurrent layer is the architecture's torch layer (klon.neural.architectures: nn.GRU,
nn.LSTM), so the model trains, saves and exports the same way whichever path computes it: on the
CPU a GRU runs the fused kernels of klon.train.gru_kernel (much faster than torch's own CPU GRU
for small widths), on a GPU and for other architectures torch computes it.
"""
import numpy as np
import torch
from torch import nn

from klon.neural.architectures import architecture
from klon.train.gru_kernel import gru_backward, gru_forward


def _chunks(batch):
    """How many parallel chunks a batch splits into: a function of the batch size alone (not of
    the core count), so that results do not depend on the machine; at least 16 rows (an AVX-512
    register of float32) per chunk: on one core, two chunks of 8 take twice as long as one of 16."""
    return max(1, min(4, batch // 16))


class _FusedGRU(torch.autograd.Function):
    """torch's GRU maths (one layer) + Dense(1) with forward and BPTT in one compiled call each,
    on a batch split into chunks. x: C x T x I x B, h0: C x H x B -> y: C x T x B and the last
    state C x H x B (no gradient flows back through it: training detaches it anyway)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, w_out, b_out):
        xn = x.detach().numpy()
        chunks, steps, _, batch = xn.shape
        hidden = h0.shape[1]
        y = np.empty((chunks, steps, batch), np.float32)
        hs = np.empty((chunks, steps + 1, hidden, batch), np.float32)
        records = [np.empty((chunks, steps, hidden, batch), np.float32) for _ in range(4)]
        weights = [p.detach().numpy() for p in (w_ih, w_hh, b_ih, b_hh)]
        dense = w_out.detach().numpy()[0]
        gru_forward(xn, h0.detach().numpy(), *weights, dense, np.float32(b_out.item()), y, hs,
                    *records)
        ctx.arrays = (xn, hs, *records, weights[0].shape, weights[1], dense)
        last = torch.from_numpy(hs[:, -1].copy())
        ctx.mark_non_differentiable(last)
        return torch.from_numpy(y), last

    @staticmethod
    def backward(ctx, grad_y, _):
        xn, hs, rs, zs, ns, hns, ih_shape, w_hh, dense = ctx.arrays
        del ctx.arrays
        chunks = xn.shape[0]
        g_ih = np.zeros((chunks, *ih_shape))
        g_hh = np.zeros((chunks, *w_hh.shape))
        gb_ih = np.zeros((chunks, w_hh.shape[0]))
        gb_hh = np.zeros((chunks, w_hh.shape[0]))
        g_out = np.zeros((chunks, dense.shape[0] + 1))
        grad_h0 = np.empty((chunks, *hs.shape[2:]), np.float32)
        gy = np.ascontiguousarray(grad_y.numpy(), dtype=np.float32)
        gru_backward(xn, hs, rs, zs, ns, hns, w_hh, dense, gy, g_ih, g_hh, gb_ih, gb_hh, g_out,
                     grad_h0)
        g_ih, g_hh, gb_ih, gb_hh, g_out = [torch.from_numpy(g.sum(axis=0).astype(np.float32))
                                           for g in (g_ih, g_hh, gb_ih, gb_hh, g_out)]
        return (None, torch.from_numpy(grad_h0), g_ih, g_hh, gb_ih, gb_hh, g_out[None, :-1],
                g_out[-1:])


class GainStageNet(nn.Module):
    """Recurrent layer (`cell`, `hidden` units) + Dense(1). forward(x, state) maps audio
    x (batch x time x inputs) to (batch x time) and returns the state after the last sample
    (pass it back in to continue the signal)."""

    def __init__(self, hidden: int = 8, cell: str = "gru", inputs: int = 1):
        super().__init__()
        architecture(cell)  # an unknown cell is refused here, with the kinds there are
        self.cell, self.hidden, self.inputs = cell, int(hidden), int(inputs)
        self.rnn = self.architecture.torch_layer(self.inputs, self.hidden)
        self.dense = nn.Linear(self.hidden, 1)
        self.fused = True  # use the fused CPU kernels where they apply

    @property
    def architecture(self):
        """The module of klon.neural.architectures for this cell (a plain module, kept out of
        the net's attributes so the net deep-copies and pickles)."""
        return architecture(self.cell)

    def initial_state(self, batch):
        return self.architecture.torch_state(self.dense.weight, batch, self.hidden)

    def forward(self, x, state=None):
        batch = x.shape[0]
        if state is None:
            state = self.initial_state(batch)
        if self.cell == "gru" and self.fused and x.device.type == "cpu":
            return self._fused_forward(x, state)
        seq, new_state = self.architecture.torch_run(self.rnn, x, state)
        return self.dense(seq)[..., 0], new_state

    def _fused_forward(self, x, state):
        batch, steps, inputs = x.shape
        chunks = _chunks(batch)
        width = -(-batch // chunks)
        pad = chunks * width - batch  # padded rows see silence and get no gradient
        if pad:
            x = torch.cat([x, x.new_zeros(pad, steps, inputs)])
            state = torch.cat([state, state.new_zeros(pad, self.hidden)])
        xc = x.reshape(chunks, width, steps, inputs).permute(0, 2, 3, 1).contiguous()
        hc = state.reshape(chunks, width, self.hidden).permute(0, 2, 1).contiguous()
        r = self.rnn
        y, last = _FusedGRU.apply(xc, hc, r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0,
                                  r.bias_hh_l0, self.dense.weight, self.dense.bias)
        y = y.permute(0, 2, 1).reshape(chunks * width, steps)
        last = last.permute(0, 2, 1).reshape(chunks * width, self.hidden)
        return y[:batch], last[:batch]


def detach_state(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
