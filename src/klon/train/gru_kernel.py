"""A GRU layer and its Dense(1) output: forward pass and back-propagation through time, each
fused over a whole sequence (numba, float32, no torch).

torch's CPU GRU pays microseconds of framework overhead per time step and operator, while a
GRU-8 step is a few hundred multiply-adds: training spent its time in overhead. Here the batch is
the innermost axis, every inner loop runs over a contiguous row (so LLVM vectorises it: that
needs error_model="numpy", since Python's ZeroDivisionError check puts a branch in every
division), and tanh is the rational one from klon.dsp.activations, which vectorises too. The
batch is split into chunks (leading axis of every array) that run on separate cores.

Maths and layout are torch's nn.GRU (gates r | z | n, weight_ih 3H x I, weight_hh 3H x H), which
is Keras' reset_after GRU with gates reordered:
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
Shapes per chunk: x T x I x B, y T x B, states H x B, per-step records T x H x B.
"""
import numpy as np
from numba import njit, prange

from klon.dsp.activations import fast_sigmoid, fast_tanh

_ONE = np.float32(1.0)
_OPTIONS = dict(cache=True, fastmath=True, error_model="numpy")


@njit(**_OPTIONS)
def _forward_chunk(x, h0, w_ih, w_hh, b_ih, b_hh, w_out, b_out, y, hs, rs, zs, ns, hns):
    steps, inputs, batch = x.shape
    hidden = h0.shape[0]
    a = np.empty((3 * hidden, batch), np.float32)  # input + recurrent pre-activations
    ah = np.empty((hidden, batch), np.float32)  # W_hn h + b_hn
    hs[0] = h0
    for t in range(steps):
        h = hs[t]
        for j in range(3 * hidden):
            aj = a[j]
            bias = b_ih[j] + b_hh[j] if j < 2 * hidden else b_ih[j]
            for b in range(batch):
                aj[b] = bias
            for i in range(inputs):
                w = w_ih[j, i]
                xi = x[t, i]
                for b in range(batch):
                    aj[b] += w * xi[b]
        for j in range(hidden):
            ahj = ah[j]
            for b in range(batch):
                ahj[b] = b_hh[2 * hidden + j]
        for k in range(hidden):
            hk = h[k]
            for j in range(2 * hidden):
                w = w_hh[j, k]
                aj = a[j]
                for b in range(batch):
                    aj[b] += w * hk[b]
            for j in range(hidden):
                w = w_hh[2 * hidden + j, k]
                ahj = ah[j]
                for b in range(batch):
                    ahj[b] += w * hk[b]
        yt = y[t]
        for b in range(batch):
            yt[b] = b_out
        for k in range(hidden):
            ar, az, an, ahk, hk = a[k], a[hidden + k], a[2 * hidden + k], ah[k], h[k]
            wk = w_out[k]
            rr, zz, nn, hh, out = rs[t, k], zs[t, k], ns[t, k], hns[t, k], hs[t + 1, k]
            for b in range(batch):
                r = fast_sigmoid(ar[b])
                z = fast_sigmoid(az[b])
                n = fast_tanh(an[b] + r * ahk[b])
                rr[b] = r
                zz[b] = z
                nn[b] = n
                hh[b] = ahk[b]
                v = n + z * (hk[b] - n)
                out[b] = v
                yt[b] += wk * v


@njit(**_OPTIONS)
def _backward_chunk(x, hs, rs, zs, ns, hns, w_hh, w_out, grad_y, g_ih, g_hh, gb_ih, gb_hh, g_out,
                    grad_h0):
    steps, inputs, batch = x.shape
    hidden = hs.shape[1]
    dh = np.zeros((hidden, batch), np.float32)
    dh_prev = np.empty((hidden, batch), np.float32)
    da = np.empty((3 * hidden, batch), np.float32)  # dL/d(pre-activations) of r, z, n
    dah = np.empty((hidden, batch), np.float32)  # dL/d(W_hn h + b_hn)
    for t in range(steps - 1, -1, -1):
        gy = grad_y[t]
        s = np.float32(0.0)
        for b in range(batch):
            s += gy[b]
        g_out[hidden] += s
        for k in range(hidden):
            dhk, hk, dp, out = dh[k], hs[t, k], dh_prev[k], hs[t + 1, k]
            rr, zz, nn, hh = rs[t, k], zs[t, k], ns[t, k], hns[t, k]
            dr, dz, dn, dahk = da[k], da[hidden + k], da[2 * hidden + k], dah[k]
            wk = w_out[k]
            s = np.float32(0.0)
            for b in range(batch):
                s += gy[b] * out[b]
                g = dhk[b] + wk * gy[b]
                r, z, n = rr[b], zz[b], nn[b]
                dnb = g * (_ONE - z) * (_ONE - n * n)
                dn[b] = dnb
                dz[b] = g * (hk[b] - n) * z * (_ONE - z)
                dr[b] = dnb * hh[b] * r * (_ONE - r)
                dahk[b] = dnb * r
                dp[b] = g * z
            g_out[k] += s
        for k in range(hidden):
            hk, dp = hs[t, k], dh_prev[k]
            for j in range(3 * hidden):
                w = w_hh[j, k]
                dj = da[j] if j < 2 * hidden else dah[j - 2 * hidden]
                s = np.float32(0.0)
                for b in range(batch):
                    dp[b] += w * dj[b]
                    s += dj[b] * hk[b]
                g_hh[j, k] += s
        for j in range(3 * hidden):
            dj = da[j]
            s = np.float32(0.0)
            for b in range(batch):
                s += dj[b]
            gb_ih[j] += s
            if j < 2 * hidden:
                gb_hh[j] += s
            for i in range(inputs):
                xi = x[t, i]
                s = np.float32(0.0)
                for b in range(batch):
                    s += dj[b] * xi[b]
                g_ih[j, i] += s
        for j in range(hidden):
            dj = dah[j]
            s = np.float32(0.0)
            for b in range(batch):
                s += dj[b]
            gb_hh[2 * hidden + j] += s
        dh, dh_prev = dh_prev, dh
    grad_h0[:] = dh


@njit(cache=True, parallel=True)
def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, w_out, b_out, y, hs, rs, zs, ns, hns):
    """Run every chunk's sequence into y. hs[c, t] is the state before step t (hs[c, 0] = h0[c]);
    rs, zs, ns, hns record the gates and W_hn h + b_hn for the backward pass."""
    for c in prange(x.shape[0]):
        _forward_chunk(x[c], h0[c], w_ih, w_hh, b_ih, b_hh, w_out, b_out, y[c], hs[c], rs[c],
                       zs[c], ns[c], hns[c])


@njit(cache=True, parallel=True)
def gru_backward(x, hs, rs, zs, ns, hns, w_hh, w_out, grad_y, g_ih, g_hh, gb_ih, gb_hh, g_out,
                 grad_h0):
    """Back-propagate every chunk from grad_y = dL/dy. Weight gradients are added into per-chunk
    accumulators (leading axis: chunks run in parallel without sharing a sum; g_out holds the
    Dense weights then its bias); the caller adds them up."""
    for c in prange(x.shape[0]):
        _backward_chunk(x[c], hs[c], rs[c], zs[c], ns[c], hns[c], w_hh, w_out, grad_y[c],
                        g_ih[c], g_hh[c], gb_ih[c], gb_hh[c], g_out[c], grad_h0[c])
