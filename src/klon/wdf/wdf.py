"""`WDF`: a described tree, flattened into arrays, with a block-processing front end."""
import numpy as np

from klon.wdf import tree as k
from klon.wdf.elements import (
    CAPACITOR,
    INDUCTOR,
    RESISTOR,
    ROOT_DIODE,
    ROOT_DIODE_PAIR,
    ROOT_IDEAL_VOLTAGE_SOURCE,
    VOLTAGE_SOURCE,
    Node,
)


class WDF:
    """A wave digital filter: `root` closes the tree whose top node is `top`.

    outputs: (element, "voltage" | "current") pairs read after every sample, with the schematic's
    polarity (see elements.py). Sources are driven, in order of `source_names`, by the columns of
    the input array given to `process`.
    """

    def __init__(self, root, top, sample_rate, outputs=()):
        if not isinstance(top, Node):
            raise TypeError("top must be a WDF element or adaptor")
        self.sample_rate = float(sample_rate)
        self.root = root
        self._flatten(top)
        self.source_names = sorted({n.name for n in self._nodes if n.kind == VOLTAGE_SOURCE})
        if root.kind == ROOT_IDEAL_VOLTAGE_SOURCE and root.name not in self.source_names:
            self.source_names.append(root.name)
        for n in self._nodes:
            if n.kind == VOLTAGE_SOURCE:
                self.topology[self._index[id(n)], k.SOURCE] = self.source_names.index(n.name)
        self.root_kind = root.kind
        self.root_source = (self.source_names.index(root.name)
                            if root.kind == ROOT_IDEAL_VOLTAGE_SOURCE else -1)
        self.root_params = np.zeros(2)
        if root.kind in (ROOT_DIODE, ROOT_DIODE_PAIR):
            self.root_params[:] = (root.saturation_current, root.ideality * root.thermal_voltage)
        quantities = {"voltage": k.VOLTAGE, "current": k.CURRENT}
        self.output_nodes = np.array([self.index_of(e) for e, _ in outputs], dtype=np.int64)
        try:
            self.output_quantities = np.array([quantities[q] for _, q in outputs], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"output quantity must be 'voltage' or 'current', not {exc}") from None
        n_states, n_inputs, n_outputs = self.n_states, len(self.source_names), len(outputs)
        # [stored waves | inputs | root wave]: the state-space step's working vector
        self._z = np.zeros(n_states + n_inputs + 1)
        self.state = self._z[:n_states]
        self.matrix = np.zeros((1 + n_states + n_outputs, n_states + n_inputs + 1))
        self._probe = (np.zeros(n_states), np.zeros(n_inputs), np.zeros(n_outputs))
        self._result = np.zeros(n_states + n_outputs)
        self.derive()

    def _flatten(self, top):
        nodes, order = [], []

        def visit(node):  # post-order: children before their adaptor
            for child in node.children:
                visit(child)
            nodes.append(node)

        visit(top)
        self._nodes = nodes
        self._index = {id(n): i for i, n in enumerate(nodes)}
        if len(self._index) != len(nodes):
            raise ValueError("an element appears twice in the tree")
        self.topology = np.full((len(nodes), 5), -1, dtype=np.int64)
        self.nodes = np.zeros((len(nodes), 4))
        child_list = []
        n_states = 0
        for i, n in enumerate(nodes):
            self.topology[i, k.KIND] = n.kind
            if n.kind == RESISTOR:
                self.nodes[i, k.VALUE] = n.resistance
            elif n.kind == CAPACITOR:
                self.nodes[i, k.VALUE] = n.capacitance
            elif n.kind == INDUCTOR:
                self.nodes[i, k.VALUE] = n.inductance
            elif n.kind == VOLTAGE_SOURCE:
                self.nodes[i, k.VALUE] = n.resistance
            if n.kind in (CAPACITOR, INDUCTOR):
                self.topology[i, k.STATE] = n_states
                n_states += 1
            if n.children:
                self.topology[i, k.CHILD_START] = len(child_list)
                self.topology[i, k.CHILD_COUNT] = len(n.children)
                child_list.extend(self._index[id(c)] for c in n.children)
            order.append(i)
        self.children = np.array(child_list, dtype=np.int64)
        self.order = np.array(order, dtype=np.int64)
        self.n_states = n_states

    def index_of(self, element):
        try:
            return self._index[id(element)]
        except KeyError:
            raise ValueError(f"{element!r} is not in this tree") from None

    def pot(self, element):
        """A handle that moves `element` (a resistor) without allocating: see PotHandle."""
        return PotHandle(self, element)

    def set_resistance(self, element, resistance):
        """A pot or a variable resistor moved: the next sample sees the new value."""
        self.set_resistances({element: resistance})

    def set_resistances(self, values):
        """Several resistances at once ({element: ohms}), with one re-derivation."""
        for element, resistance in values.items():
            if element.kind not in (RESISTOR, VOLTAGE_SOURCE):
                raise ValueError("only resistors and source resistances can change at run time")
            if not resistance > 0.0 and element.kind == RESISTOR:
                raise ValueError(f"resistance must be positive, got {resistance}")
            self.nodes[self.index_of(element), k.VALUE] = resistance
        self.derive()

    def derive(self):
        """Derive the state-space matrix from the element values: after pots moved (several
        PotHandle.set calls share one derive). The stored waves carry over untouched."""
        k.derive_state_space(self.topology, self.children, self.order, self.nodes,
                             1.0 / self.sample_rate, len(self.source_names), self.output_nodes,
                             self.output_quantities, *self._probe, self.matrix)

    @property
    def port_resistance(self):
        """The tree's resistance as the root sees it."""
        return self.nodes[self.order[-1], k.PORT_RESISTANCE]

    def reset(self):
        self.state[:] = 0.0

    def process(self, inputs, method="state_space"):
        """inputs: (frames, sources) or (frames,) for one source -> outputs (frames, n_outputs)."""
        inputs = np.ascontiguousarray(inputs, dtype=np.float64)
        if inputs.ndim == 1:
            inputs = inputs[:, None]
        if inputs.shape[1] != len(self.source_names):
            raise ValueError(f"expected {len(self.source_names)} input columns "
                             f"({', '.join(self.source_names)}), got {inputs.shape[1]}")
        outputs = np.zeros((inputs.shape[0], len(self.output_nodes)))
        if method == "state_space":
            k.run_state_space(self.matrix, self._z, self.n_states, inputs, self.root_kind,
                              self.root_source, self.root_params, self.port_resistance,
                              self._result, outputs)
        elif method == "waves":
            k.run_waves(self.topology, self.children, self.order, self.nodes, self.state, inputs,
                        self.root_kind, self.root_source, self.root_params, self.output_nodes,
                        self.output_quantities, outputs)
        else:
            raise ValueError("method must be 'state_space' or 'waves'")
        return outputs


class PotHandle:
    """One resistor of a tree (a pot's half, a variable resistor), moved at run time.

    `set(ohms)` writes the new value and defers the update, so that several pots moved
    together cost one `tree.derive()`; `move(ohms)` is set and derive in one. Neither makes a
    Python object, so a knob can move from an audio thread."""

    def __init__(self, tree, element):
        if element.kind != RESISTOR:
            raise ValueError("only resistors can be moved at run time")
        self.tree = tree
        self._values = tree.nodes[:, k.VALUE]  # a view: writing it writes the tree
        self._row = tree.index_of(element)

    @property
    def resistance(self):
        return self._values[self._row]

    def set(self, ohms):
        """The new value, seen by the next `tree.derive()`."""
        if not ohms > 0.0:
            raise ValueError(f"resistance must be positive, got {ohms}")
        self._values[self._row] = ohms

    def move(self, ohms):
        """The new value, in effect from the next sample."""
        self.set(ohms)
        self.tree.derive()
