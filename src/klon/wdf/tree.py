"""Flatten a described WDF tree into arrays, and the compiled kernels that run it.

Two ways to run a tree, computing the same thing:
- `wave_step`: the textbook traversal (reflect up, solve the root, scatter down), element by
  element. Clear, and the reference the fast path is tested against.
- `state_space_step`: the fast path. A tree whose only nonlinearity is its root is linear
  everywhere else, so the wave the root sees is a linear function of the reactive elements'
  stored waves x and the source inputs u, and the next stored waves and any element's voltage
  or current are linear in (x, u, root wave). `derive_state_space` finds those linear maps by
  probing the tree with unit vectors (exact, by superposition); a sample then costs a few small
  dot products plus the root solve. A pot that moves only means deriving the maps again.

A diode-pair root can also run anti-aliased (`antialiased_diode_pair` between the step's halves,
`project_up` and `complete_down`): first-order antiderivative anti-aliasing of the wave it
reflects, kept in step with the sample.
"""
from numba import njit

from klon.wdf.elements import (
    CAPACITOR,
    INDUCTOR,
    PARALLEL,
    RESISTOR,
    ROOT_DIODE,
    ROOT_IDEAL_VOLTAGE_SOURCE,
    ROOT_OPEN,
    ROOT_SHORT,
    SERIES,
    VOLTAGE_SOURCE,
)
from klon.wdf.omega import diode_pair_reflection, diode_pair_voltage, diode_voltage, pair_offset

# columns of the integer topology table
KIND, CHILD_START, CHILD_COUNT, SOURCE, STATE = range(5)
# columns of the float node table
VALUE, PORT_RESISTANCE, WAVE_A, WAVE_B = range(4)
# root table: kind, source index, saturation current, n * Vt
VOLTAGE, CURRENT = 0, 1
# antialiased_diode_pair's memory: the previous wave up, F and f there, and the solve's offset
# for the port resistance the memory was set at (klon.wdf.omega.pair_offset)
MEMORY_WAVE, MEMORY_ANTIDERIVATIVE, MEMORY_REFLECTED, MEMORY_OFFSET = range(4)
ADAA_MEMORY = 4
# volts: the shortest segment of waves over which antialiased_diode_pair takes F's difference.
# Its rounding error is about 5e-14 V^-1 a^2 / segment (F grows as a^2), the plain value's
# error below it at most 1.3e-10 V (segment / 1e-5 V)^2: at 2e-5 V both stay under 3e-9 V
# for waves up to 10 V (the pedal's reach 7 V at Gain 1, 1 V in; 37 V for absurd inputs).
ADAA_THRESHOLD = 2e-5


@njit(cache=True, error_model="numpy")
def update_port_resistances(topology, children, order, nodes, sample_period):
    for k in range(order.shape[0]):
        n = order[k]
        kind = topology[n, KIND]
        if kind == RESISTOR or kind == VOLTAGE_SOURCE:
            nodes[n, PORT_RESISTANCE] = nodes[n, VALUE]
        elif kind == CAPACITOR:
            nodes[n, PORT_RESISTANCE] = sample_period / (2.0 * nodes[n, VALUE])
        elif kind == INDUCTOR:
            nodes[n, PORT_RESISTANCE] = 2.0 * nodes[n, VALUE] / sample_period
        else:
            start = topology[n, CHILD_START]
            total = 0.0
            for c in range(start, start + topology[n, CHILD_COUNT]):
                r = nodes[children[c], PORT_RESISTANCE]
                total += r if kind == SERIES else 1.0 / r
            nodes[n, PORT_RESISTANCE] = total if kind == SERIES else 1.0 / total


@njit(cache=True, error_model="numpy")
def reflect(topology, children, order, nodes, state, inputs):
    """Waves up the tree (leaves first); returns the wave the root sees."""
    n = 0
    for k in range(order.shape[0]):
        n = order[k]
        kind = topology[n, KIND]
        if kind == RESISTOR:
            b = 0.0
        elif kind == CAPACITOR:
            b = state[topology[n, STATE]]
        elif kind == INDUCTOR:
            b = -state[topology[n, STATE]]
        elif kind == VOLTAGE_SOURCE:
            b = inputs[topology[n, SOURCE]]
        else:
            start = topology[n, CHILD_START]
            b = 0.0
            if kind == SERIES:
                for c in range(start, start + topology[n, CHILD_COUNT]):
                    b += nodes[children[c], WAVE_B]
            else:
                for c in range(start, start + topology[n, CHILD_COUNT]):
                    child = children[c]
                    b += (nodes[n, PORT_RESISTANCE] / nodes[child, PORT_RESISTANCE]
                          * nodes[child, WAVE_B])
        nodes[n, WAVE_B] = b
    return nodes[n, WAVE_B]


@njit(cache=True, error_model="numpy")
def scatter(topology, children, order, nodes, state, wave_into_top):
    """Waves down the tree (root first); reactive elements store what they receive."""
    top = order[order.shape[0] - 1]
    nodes[top, WAVE_A] = wave_into_top
    for k in range(order.shape[0] - 1, -1, -1):
        n = order[k]
        kind = topology[n, KIND]
        a = nodes[n, WAVE_A]
        if kind == CAPACITOR or kind == INDUCTOR:
            state[topology[n, STATE]] = a
        elif kind == SERIES or kind == PARALLEL:
            start = topology[n, CHILD_START]
            stop = start + topology[n, CHILD_COUNT]
            if kind == SERIES:
                # common current (a - b) / (2 R) shared in proportion to each port resistance
                excess = (a - nodes[n, WAVE_B]) / nodes[n, PORT_RESISTANCE]
                for c in range(start, stop):
                    child = children[c]
                    nodes[child, WAVE_A] = (nodes[child, WAVE_B]
                                            + nodes[child, PORT_RESISTANCE] * excess)
            else:
                # common voltage (a + b) / 2 seen by every child
                twice_v = a + nodes[n, WAVE_B]
                for c in range(start, stop):
                    child = children[c]
                    nodes[child, WAVE_A] = twice_v - nodes[child, WAVE_B]


@njit(cache=True, error_model="numpy", inline="always")
def solve_root(root_kind, root_source, root_params, wave_up, port_resistance, inputs):
    """The wave the root sends back into the tree, given the wave the tree sends up."""
    if root_kind == ROOT_IDEAL_VOLTAGE_SOURCE:
        return 2.0 * inputs[root_source] - wave_up
    if root_kind == ROOT_OPEN:
        return wave_up
    if root_kind == ROOT_SHORT:
        return -wave_up
    if root_kind == ROOT_DIODE:
        v = diode_voltage(wave_up, port_resistance, root_params[0], root_params[1])
    else:
        v = diode_pair_voltage(wave_up, port_resistance, root_params[0], root_params[1])
    return 2.0 * v - wave_up


@njit(cache=True, error_model="numpy")
def read_outputs(nodes, output_nodes, output_quantities, out):
    for k in range(output_nodes.shape[0]):
        n = output_nodes[k]
        a = nodes[n, WAVE_A]
        b = nodes[n, WAVE_B]
        if output_quantities[k] == VOLTAGE:
            out[k] = 0.5 * (a + b)
        else:
            out[k] = 0.5 * (a - b) / nodes[n, PORT_RESISTANCE]


@njit(cache=True, error_model="numpy")
def wave_step(topology, children, order, nodes, state, inputs, root_kind, root_source, root_params,
              output_nodes, output_quantities, out):
    """One sample by traversal; returns the root's voltage."""
    top = order[order.shape[0] - 1]
    up = reflect(topology, children, order, nodes, state, inputs)
    down = solve_root(root_kind, root_source, root_params, up, nodes[top, PORT_RESISTANCE], inputs)
    scatter(topology, children, order, nodes, state, down)
    read_outputs(nodes, output_nodes, output_quantities, out)
    return 0.5 * (up + down)


@njit(cache=True, error_model="numpy")
def derive_state_space(topology, children, order, nodes, sample_period, n_inputs,
                       output_nodes, output_quantities, probe_state, probe_inputs, probe_out,
                       matrix):
    """Fill `matrix` (rows: root wave, next states, outputs; columns: states, inputs, root wave).

    The probe_* arrays are scratch space, so that a pot moving in real time allocates nothing.
    """
    update_port_resistances(topology, children, order, nodes, sample_period)
    n_states = probe_state.shape[0]
    n_outputs = output_nodes.shape[0]
    n_columns = n_states + n_inputs + 1
    for j in range(n_columns):
        probe_state[:] = 0.0
        probe_inputs[:] = 0.0
        down = 0.0
        if j < n_states:
            probe_state[j] = 1.0
        elif j < n_states + n_inputs:
            probe_inputs[j - n_states] = 1.0
        else:
            down = 1.0
        up = reflect(topology, children, order, nodes, probe_state, probe_inputs)
        matrix[0, j] = up if j < n_states + n_inputs else 0.0
        scatter(topology, children, order, nodes, probe_state, down)
        read_outputs(nodes, output_nodes, output_quantities, probe_out)
        for i in range(n_states):
            matrix[1 + i, j] = probe_state[i]
        for i in range(n_outputs):
            matrix[1 + n_states + i, j] = probe_out[i]


# The halves of a state-space step take the map's sizes as arguments, not from the arrays: a
# caller whose sizes are constants (the circuit gain stage's trees) gets loops the compiler
# unrolls, with every product's operands in registers; read off the arrays, they stay loops.
@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"}, inline="always")
def project_up(matrix, z, rows, columns, result):
    """The first half of a state-space step: returns the wave up to the root, and leaves in
    result what every other row gets from the stored waves and the inputs (all that does not
    wait for the root, so the CPU overlaps it with the root's solve). rows: the map's rows (the
    root's first); columns: the stored waves and inputs, z's entries before the root wave."""
    up = 0.0
    for j in range(columns):
        up += matrix[0, j] * z[j]
    for i in range(1, rows):
        acc = 0.0
        for j in range(columns):
            acc += matrix[i, j] * z[j]
        result[i - 1] = acc
    return up


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"}, inline="always")
def complete_down(matrix, z, rows, columns, n_states, down, result):
    """The second half: the root's wave down into every row, the stored waves updated."""
    z[columns] = down
    for i in range(1, rows):
        result[i - 1] += matrix[i, columns] * down
    for i in range(n_states):
        z[i] = result[i]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"}, inline="always")
def state_space_step(matrix, z, n_states, n_inputs, root_kind, root_source, root_params,
                     port_resistance, result):
    """One sample by the derived maps; returns the root's voltage.

    z holds [stored waves, inputs, root wave]: the caller sets the inputs, the step updates the
    stored waves in place and leaves the outputs in result[n_states:]. (Reassociating the dot
    products lets them vectorise; it changes results only in the last bits.)
    """
    rows, columns = matrix.shape[0], z.shape[0] - 1
    up = project_up(matrix, z, rows, columns, result)
    down = solve_root(root_kind, root_source, root_params, up, port_resistance,
                      z[n_states:n_states + n_inputs])
    complete_down(matrix, z, rows, columns, n_states, down, result)
    return 0.5 * (up + down)


@njit(cache=True, error_model="numpy")
def fold_source_root(matrix, out):
    """For a tree rooted at an ideal voltage source, its one input: the derived map with the root
    solved in (the wave down is 2 v - the wave up), so a sample is one product. out: rows the
    next states, then the outputs; columns the states, then v (derive_state_space's matrix, less
    its root row and root column)."""
    last = matrix.shape[1] - 1  # the root wave's column; v's is the one before
    for i in range(1, matrix.shape[0]):
        to_down = matrix[i, last]
        for j in range(last):
            out[i - 1, j] = matrix[i, j] - to_down * matrix[0, j]
        out[i - 1, last - 1] += 2.0 * to_down


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"}, inline="always")
def folded_source_step(folded, z, rows, n_states, result):
    """One sample by fold_source_root's map (rows: its rows, n_states + the outputs): z holds
    [stored waves, v] (the caller sets v); the stored waves are updated in place and the outputs
    left in result[n_states:]."""
    columns = n_states + 1
    for i in range(rows):
        acc = 0.0
        for j in range(columns):
            acc += folded[i, j] * z[j]
        result[i] = acc
    for i in range(n_states):
        z[i] = result[i]


@njit(cache=True, error_model="numpy")
def sum_outputs(matrix, n_states, out):
    """The derived map with all its output rows added into one (out's last row), for a caller
    that only needs their sum: one product where there were several."""
    for j in range(matrix.shape[1]):
        total = 0.0
        for i in range(1 + n_states, matrix.shape[0]):
            total += matrix[i, j]
        for i in range(1 + n_states):
            out[i, j] = matrix[i, j]
        out[1 + n_states, j] = total


@njit(cache=True, error_model="numpy")
def set_antialiasing_memory(memory, a, root_params, port_resistance):
    """memory = [a, F(a), f(a), offset]: what antialiased_diode_pair remembers of the sample
    before, for a wave a up to the pair, f(a) = 2 v(a) - a the wave it reflects and F its
    antiderivative, at the port resistance the tree has now, and the pair solve's offset there.
    Set it at rest (a = 0) and again, at the same a, whenever the port resistance changes (a pot
    moved): all but a depend on it."""
    offset = pair_offset(port_resistance, root_params[0], root_params[1])
    plain, big = diode_pair_reflection(a, offset, port_resistance, root_params[0],
                                       root_params[1])
    memory[MEMORY_WAVE] = a
    memory[MEMORY_ANTIDERIVATIVE] = big
    memory[MEMORY_REFLECTED] = plain
    memory[MEMORY_OFFSET] = offset


@njit(cache=True, error_model="numpy", inline="always")
def antialiased_diode_pair(up, memory, root_params, port_resistance):
    """The wave an anti-parallel diode pair sends down, given the wave up, with first-order
    antiderivative anti-aliasing (ADAA) kept in step with the sample.

    The pair reflects b = f(a) = 2 v(a) - a. First-order ADAA replaces f(a_n) with f's mean
    over the segment from the previous wave a_(n-1) to this one, (F(a_n) - F(a_(n-1))) /
    (a_n - a_(n-1)), F an antiderivative (klon.wdf.omega.diode_pair_antiderivative): in effect
    f of a continuous, linearly interpolated wave, averaged over the sample, whose harmonics near
    the sample rate and its multiples, the ones that fold down to low frequencies, are cut. That
    mean belongs half a sample back. Taken as this sample's, even for f's departure from its
    small-signal line only (which keeps small signals exact), it is off by about half f's change
    over the step, inside the tree's feedback: on a clipped 4 kHz tone, errors as large as the
    signal. So half the plain reflection's change, (f(a_n) - f(a_(n-1))) / 2, is added: the
    result is the plain f(a_n) plus the mean's departure from the trapezoid
    (f(a_n) + f(a_(n-1))) / 2, the rule the tree's reactive elements integrate by. An affine f
    passes exactly (small signals are untouched); where f bends within the segment the
    correction is what removes the aliases.

    Where the segment is shorter than ADAA_THRESHOLD, F's difference would be mostly rounding,
    and the correction (f'' times the segment squared, over 12) is negligible: f(a_n) itself.
    memory holds [a_(n-1), F(a_(n-1)), f(a_(n-1)), the solve's offset] and is updated (see
    set_antialiasing_memory).
    """
    plain, big = diode_pair_reflection(up, memory[MEMORY_OFFSET], port_resistance,
                                       root_params[0], root_params[1])
    step = up - memory[MEMORY_WAVE]
    if abs(step) > ADAA_THRESHOLD:
        down = ((big - memory[MEMORY_ANTIDERIVATIVE]) / step
                + 0.5 * (plain - memory[MEMORY_REFLECTED]))
    else:
        down = plain
    memory[MEMORY_WAVE] = up
    memory[MEMORY_ANTIDERIVATIVE] = big
    memory[MEMORY_REFLECTED] = plain
    return down


@njit(cache=True, error_model="numpy")
def run_state_space(matrix, z, n_states, inputs, root_kind, root_source, root_params,
                    port_resistance, result, outputs):
    """A block: inputs (frames x sources) -> outputs (frames x outputs)."""
    n_inputs = inputs.shape[1]
    for t in range(inputs.shape[0]):
        z[n_states:n_states + n_inputs] = inputs[t]
        state_space_step(matrix, z, n_states, n_inputs, root_kind, root_source, root_params,
                         port_resistance, result)
        outputs[t] = result[n_states:]


@njit(cache=True, error_model="numpy")
def run_waves(topology, children, order, nodes, state, inputs, root_kind, root_source, root_params,
              output_nodes, output_quantities, outputs):
    for t in range(inputs.shape[0]):
        wave_step(topology, children, order, nodes, state, inputs[t], root_kind, root_source,
                  root_params, output_nodes, output_quantities, outputs[t])
