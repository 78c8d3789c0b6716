"""Pieces of the C step that every architecture shares (klon.export.c99.neural_c puts the
step into klon_pedal.c).

The C step computes what the numba step computes, twice: in the numba kernel's order of
operations (its balanced sums, with the multiply-adds LLVM fuses written as fmaf), so the default
build matches the Python engine bit for bit, and under -DKLON_FAST_ACTIVATIONS as plain chains of
multiply-adds (fewer instructions; the compiler fuses them where the target and flags allow).

The weights are laid out with the unit j last and contiguous (klon_model `m`):
u[gate][unit of the previous state][j], k[gate][input][j], b[gate][j], then the architecture's
own fields, each [j]. Each gate's sum is written once, for unit j, inside a loop over j whose
every access is m->..[j], a[.. + j] or a scalar (h0.., u0..): the loop over the units is
elementwise, so a compiler runs it as vector operations (on x86-64 with AVX2 and FMA, eight units
per instruction), each unit still through the very operations of the numba step, so the result
is the same bit for bit. A target without vectors runs the same loop one unit at a time.
"""
from collections.abc import Sequence

Product = tuple[str, str]


def pairs(terms: Sequence[Product]) -> tuple[str, Product | None]:
    """The numba step's balanced sum (common.tree) as LLVM contracts it: the first product of
    each pair fused into a multiply-add with the second, fmaf(a, b, c * d), then plain
    additions; a product left without a partner (odd counts) fused into the addition that takes
    it in. Returns (text, product): product is (a, b) when the whole sum is that one bare
    product."""
    level = [(f"fmaf({a}, {b}, {c} * {d})", None)
             for (a, b), (c, d) in zip(terms[::2], terms[1::2], strict=False)]
    if len(terms) % 2:
        a, b = terms[-1]
        level.append((f"{a} * {b}", (a, b)))
    while len(level) > 1:
        level = [(plus(level[i][0], level[i + 1]), None) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def plus(left: str, right: tuple[str, Product | None]) -> str:
    """left + right, right as pairs() gives it: a bare product is fused into the addition."""
    text, product = right
    return f"fmaf({product[0]}, {product[1]}, {left})" if product else f"({left} + {text})"


def chain(first: str, terms: Sequence[Product]) -> str:
    """first + a0 b0 + a1 b1 + ...: one chain of multiply-adds."""
    return " + ".join([first] + [f"{a} * {b}" for a, b in terms])


def blend(fused: Product, other: Product, exact: bool) -> str:
    """a b + c d for fused = (a, b), other = (c, d); exact: the first product fused, as the
    numba step's update compiles, fmaf(a, b, c * d)."""
    (a, b), (c, d) = fused, other
    return f"fmaf({a}, {b}, ({c}) * ({d}))" if exact else f"({c}) * ({d}) + ({a}) * ({b})"


def either(exact: list[str], fast: list[str]) -> list[str]:
    """The exact lines by default, the fast ones under -DKLON_FAST_ACTIVATIONS."""
    return ["#ifdef KLON_FAST_ACTIVATIONS", *fast, "#else", *exact, "#endif"]


def recurrent_terms(gate: int, hidden: int) -> list[Product]:
    """The products of gate `gate`'s recurrent sum for unit j."""
    return [(f"h{m}", f"m->u[{gate}][{m}][j]") for m in range(hidden)]


def input_sum(gate: int, inputs: int, exact: bool) -> str:
    """Gate `gate`'s bias plus its inputs (u0 the audio, u1 a knob) for unit j."""
    us = [f"u{i}" for i in range(inputs)]
    if not exact:
        return chain(f"m->b[{gate}][j]", [(u, f"m->k[{gate}][{i}][j]") for i, u in enumerate(us)])
    text = f"m->b[{gate}][j]"
    for i, u in enumerate(us):
        text = f"fmaf({u}, m->k[{gate}][{i}][j], {text})"
    return text


def pre_activation(gate: int, hidden: int, inputs: int, exact: bool) -> str:
    """A gate's whole pre-activation: inputs, bias and the recurrent sum."""
    if exact:
        return plus(input_sum(gate, inputs, True), pairs(recurrent_terms(gate, hidden)))
    return chain(input_sum(gate, inputs, False), recurrent_terms(gate, hidden))


def step_head(gates: int, hidden: int, inputs: int) -> list[str]:
    """`klon_step`'s signature, the previous state read into h0.., the scratch array a (one
    value per gate and unit) and the opening of the loop over the units j."""
    params = ", ".join(f"float u{i}" for i in range(inputs))
    return [f"static float klon_step(const klon_model *m, float *state, {params})", "{",
            "    const float " + ", ".join(f"h{m} = state[{m}]" for m in range(hidden)) + ";",
            f"    float a[{gates * hidden}]; /* per gate and unit: pre-activations, then tanh */",
            "    int j;",
            "    /* the sums of every gate, for all units at once (the weights of unit j at [j], "
            "so the loop",
            "       runs as vector operations where the target has them), then the activations "
            "in one loop */",
            f"    for (j = 0; j < {hidden}; j++) {{"]


def step_tail(hidden: int, inputs: int) -> list[str]:
    """The Dense output, the end of klon_step and KLON_STEP, which the bank calls (a
    two-input model gets the Gain as its second input)."""
    dense = [(f"m->dense[{j}]", f"state[{j}]") for j in range(hidden)]
    lines = either([f"    return {plus('m->dense_bias', pairs(dense))};"],
                   [f"    return {chain('m->dense_bias', dense)};"])
    lines.append("}")
    gain = "(float)(gain)" if inputs == 2 else ""
    step = f"klon_step((m), (state), (u0){', ' if gain else ''}{gain})"
    return lines + ["", f"#define KLON_STEP(m, state, u0, gain) {step}"]


def join(lines: list[str]) -> str:
    return "\n".join(wrap(line) for line in lines)


def wrap(line: str, width: int = 100) -> str:
    """Break a long generated line after '+' signs, continuing under its first operand."""
    if len(line) <= width:
        return line
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    parts, current = [], ""
    for piece in line.split(" + "):
        candidate = piece if not current else f"{current} + {piece}"
        if current and len(candidate) > width - (len(indent) if parts else 0):
            parts.append(current + " +")
            current = piece
        else:
            current = candidate
    parts.append(current)
    return ("\n" + indent).join(parts)
