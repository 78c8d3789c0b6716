"""A wave digital filter's state-space maps as straight-line C: klon.wdf's probing, run on symbols.

`klon.wdf.tree.derive_state_space` finds a tree's linear maps by probing it with unit vectors:
per column a reflect (leaves to root) and a scatter (root to leaves), then the stored waves and
outputs are read off. Run here over symbols instead of numbers, with zeros and ones folded away,
the same probing becomes a short list of C statements: a unit wave from one leaf only climbs its
own path, so most of a traversal's work is multiplying by zero. The statements compute the maps
from the port resistances, which depend on the sample period and the pots: those stay C
variables. The arithmetic is the traversal's, operation for operation, so the C's maps equal
Python's to rounding.
"""
import re

from klon.export.c99.literals import c_double
from klon.wdf import tree as k
from klon.wdf.elements import CAPACITOR, INDUCTOR, PARALLEL, RESISTOR, SERIES, VOLTAGE_SOURCE


class Emitter:
    """Straight-line C over doubles with constant folding. A value is a Python float (a
    constant, folded with the same IEEE arithmetic C would use) or the name of a C variable."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.lines = []

    def let(self, expression):
        name = f"{self.prefix}{len(self.lines)}"
        self.lines.append(f"const double {name} = {expression};")
        return name

    @staticmethod
    def text(value):
        return c_double(value) if isinstance(value, float) else value

    def add(self, x, y):
        if isinstance(x, float) and isinstance(y, float):
            return x + y
        if x == 0.0:
            return y
        if y == 0.0:
            return x
        return self.let(f"{self.text(x)} + {self.text(y)}")

    def sub(self, x, y):
        if isinstance(x, float) and isinstance(y, float):
            return x - y
        if y == 0.0:
            return x
        return self.let(f"{self.text(x)} - {self.text(y)}")

    def mul(self, x, y):
        if isinstance(x, float) and isinstance(y, float):
            return x * y
        if x == 0.0 or y == 0.0:
            return 0.0
        if x == 1.0:
            return y
        if y == 1.0:
            return x
        return self.let(f"{self.text(x)} * {self.text(y)}")

    def div(self, x, y):
        if isinstance(x, float) and isinstance(y, float):
            return x / y
        if x == 0.0:
            return 0.0
        if y == 1.0:
            return x
        return self.let(f"{self.text(x)} / {self.text(y)}")


def derive_c(tree, variables, period="period", matrix="m", prefix="t"):
    """C statements that fill `matrix` (rows: root wave, next states, outputs; columns: states,
    inputs, root wave) as derive_state_space does, and the C text of the tree's port resistance
    (what its root sees). variables: {node index: C expression of its resistance} for the
    resistors that move (pots); the rest are the tree's values. Returns (lines, port)."""
    topo, values = tree.topology, tree.nodes[:, k.VALUE]
    n_nodes, n_states, n_inputs = len(topo), tree.n_states, len(tree.source_names)
    e = Emitter(prefix)
    r, share = [0.0] * n_nodes, [1.0] * n_nodes

    def children(n):
        start = topo[n, k.CHILD_START]
        return [int(c) for c in tree.children[start:start + topo[n, k.CHILD_COUNT]]]

    for n in range(n_nodes):  # storage order is post-order: children first
        kind = topo[n, k.KIND]
        if kind in (RESISTOR, VOLTAGE_SOURCE):
            r[n] = variables.get(n, float(values[n]))
        elif kind == CAPACITOR:
            r[n] = e.div(period, 2.0 * float(values[n]))
        elif kind == INDUCTOR:
            r[n] = e.div(2.0 * float(values[n]), period)
        else:
            total = 0.0
            for c in children(n):
                total = e.add(total, r[c] if kind == SERIES else e.div(1.0, r[c]))
            r[n] = total if kind == SERIES else e.div(1.0, total)
            for c in children(n):
                share[c] = e.div(r[c], r[n]) if kind == SERIES else e.div(r[n], r[c])
    lines = []
    n_columns = n_states + n_inputs + 1
    for j in range(n_columns):
        b = [0.0] * n_nodes
        for n in range(n_nodes):  # reflect: only the probed leaf's path is non-zero
            kind = topo[n, k.KIND]
            if kind in (CAPACITOR, INDUCTOR):
                b[n] = (1.0 if kind == CAPACITOR else -1.0) if topo[n, k.STATE] == j else 0.0
            elif kind == VOLTAGE_SOURCE:
                b[n] = 1.0 if n_states + topo[n, k.SOURCE] == j else 0.0
            elif kind in (SERIES, PARALLEL):
                for c in children(n):
                    b[n] = e.add(b[n], b[c] if kind == SERIES else e.mul(share[c], b[c]))
        a = [0.0] * n_nodes
        a[n_nodes - 1] = 1.0 if j == n_columns - 1 else 0.0
        for n in range(n_nodes - 1, -1, -1):  # scatter
            kind = topo[n, k.KIND]
            if kind in (SERIES, PARALLEL):
                excess = e.sub(a[n], b[n]) if kind == SERIES else e.add(a[n], b[n])
                for c in children(n):
                    a[c] = (e.add(b[c], e.mul(share[c], excess)) if kind == SERIES
                            else e.sub(excess, b[c]))
        column = [b[n_nodes - 1] if j < n_columns - 1 else 0.0]
        column += [0.0] * n_states
        for n in range(n_nodes):
            if topo[n, k.KIND] in (CAPACITOR, INDUCTOR):
                column[1 + topo[n, k.STATE]] = a[n]
        for n, quantity in zip(tree.output_nodes, tree.output_quantities, strict=True):
            if quantity == k.VOLTAGE:
                column.append(e.mul(0.5, e.add(a[n], b[n])))
            else:
                column.append(e.div(e.mul(0.5, e.sub(a[n], b[n])), r[n]))
        lines += [f"{matrix}[{i}][{j}] = {Emitter.text(v)};" for i, v in enumerate(column)]
    port = Emitter.text(r[n_nodes - 1])
    return _used(e.lines, lines + [port], prefix) + lines, port


def _used(definitions, uses, prefix):
    """The definitions that `uses` need, directly or through one another (the probing computes
    shares and sums that no entry turns out to read)."""
    name = re.compile(rf"\b{prefix}\d+\b")
    needed = set(name.findall(" ".join(uses)))
    kept = []
    for line in reversed(definitions):
        defined, expression = line.split(" = ", 1)
        if defined.split()[-1] in needed:
            needed.update(name.findall(expression))
            kept.append(line)
    return kept[::-1]
