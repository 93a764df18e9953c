"""The classifiers' kernels (``learn_logistic``, ``learn_softmax``): C = Python specification
bit for bit, = a numpy loop of the seed's formula to 1e-12, losses = River's metrics.

Each kernel runs compiled (``streamlearn.fast._kernels``) and as its Python specification
(``streamlearn.fast.spec``) on the same blocks; every output (weights, intercepts, each
probability, each loss, the running mean) is compared bit for bit. The oracle is the seed's
update written as a numpy loop (``p = sigmoid(theta . x + theta_0)``,
``theta -= lr * (p - y) * x``), and River's ``LogLoss`` and ``CrossEntropy`` fed the same
probabilities give the same running means to the last bit.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from river import metrics as river_metrics

from streamlearn.fast import classspec, spec

try:
    from streamlearn.fast import _kernels
except ImportError:  # a source tree never installed; pip builds it, so never under CI
    if os.environ.get("CI") == "true":
        raise
    _kernels = None  # type: ignore[assignment]

LABELED, UNLABELED, DOUBT, REJECTED, NOTHING = (
    spec.LABELED,
    spec.UNLABELED,
    spec.DOUBT,
    spec.REJECTED,
    spec.NOTHING,
)
# pip builds the extension: only a source tree never installed lacks it, never CI.
_NOT_BUILT = pytest.mark.skipif(
    _kernels is None and os.environ.get("CI") != "true", reason="the extension is not built"
)
WHICH = [
    pytest.param("c", id="c", marks=_NOT_BUILT),
    pytest.param("python", id="python"),
]


def logistic_kernel(which: str):
    return _kernels.learn_logistic if which == "c" else classspec.learn_logistic


def softmax_kernel(which: str):
    return _kernels.learn_softmax if which == "c" else classspec.learn_softmax


def bits(values) -> list[str]:
    return [float(v).hex() for v in np.asarray(values).ravel()]


def binary_block(n: int, d: int, seed: int, *, scale: float = 1.0) -> np.ndarray:
    """Rows of features and a 0/1 target (a noisy linear rule), as the parser leaves them."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n, d)) * rng.choice([0.1, 1.0, 5.0], size=d) * scale, 6)
    y = (X @ rng.normal(size=d) + rng.normal(scale=0.5, size=n) > 0).astype(float)
    return np.column_stack([X, y])


def multiclass_block(n: int, d: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n, d)), 6)
    scores = X @ rng.normal(size=(d, k)) + rng.normal(scale=0.5, size=(n, k))
    return np.column_stack([X, scores.argmax(axis=1).astype(float)])


def mixed_status(n: int, seed: int) -> np.ndarray:
    """Mostly labeled rows, with unlabeled, rejected and header rows among them."""
    rng = np.random.default_rng(seed)
    status = np.full(n, LABELED, dtype=np.int8)
    kinds = rng.choice([UNLABELED, REJECTED, NOTHING], size=n // 10)
    status[rng.choice(n, size=n // 10, replace=False)] = kinds
    return status


def run_logistic(which, values, status, lr, weights=None, state=None, start=0, stop=None, ring=()):
    n, columns = values.shape
    weights = np.zeros(columns) if weights is None else weights
    state = np.zeros(classspec.N_LOSS_STATE) if state is None else state
    p_out, loss_out = np.full(n, np.nan), np.full(n, np.nan)
    stop = n if stop is None else stop
    kernel = logistic_kernel(which)
    row = kernel(values, status, start, stop, weights, lr, state, p_out, loss_out, *ring)
    return row, weights, state, p_out, loss_out


def run_softmax(
    which, values, status, classes, lr, k, weights=None, state=None, stop=None, ring=()
):
    n, columns = values.shape
    weights = np.zeros((k, columns)) if weights is None else weights
    state = np.zeros(classspec.N_LOSS_STATE) if state is None else state
    p_out, loss_out = np.full((n, weights.shape[0]), np.nan), np.full(n, np.nan)
    stop = n if stop is None else stop
    kernel = softmax_kernel(which)
    row = kernel(values, status, classes, 0, stop, weights, lr, state, p_out, loss_out, *ring)
    return row, weights, state, p_out, loss_out


def logistic_oracle(X, y, lr, learn):
    """The seed's update as a numpy loop: p = sigmoid(theta . x + theta_0), then the step."""
    theta, theta0 = np.zeros(X.shape[1]), 0.0
    ps = []
    for i in range(X.shape[0]):
        p = 1.0 / (1.0 + np.exp(-(X[i] @ theta + theta0)))
        ps.append(p)
        if learn[i]:
            theta = theta - lr * (p - y[i]) * X[i]
            theta0 = theta0 - lr * (p - y[i])
    return theta, theta0, np.array(ps)


def softmax_oracle(X, y, k, lr, learn):
    W, b = np.zeros((k, X.shape[1])), np.zeros(k)
    ps = []
    for i in range(X.shape[0]):
        z = W @ X[i] + b
        e = np.exp(z - z.max())
        p = e / e.sum()
        ps.append(p)
        if learn[i]:
            g = p - np.eye(k)[int(y[i])]
            W = W - lr * np.outer(g, X[i])
            b = b - lr * g
    return W, b, np.array(ps)


@pytest.mark.parametrize("which", WHICH)
def test_logistic_equals_the_numpy_loop_and_rivers_log_loss(which):
    values = binary_block(3000, 6, seed=1)
    status = mixed_status(3000, seed=2)
    row, weights, state, p, loss = run_logistic(which, values, status, 0.05)
    assert row == 3000
    used = (status == LABELED) | (status == UNLABELED)
    X, y = values[used, :-1], values[used, -1]
    theta, theta0, ps = logistic_oracle(X, y, 0.05, status[used] == LABELED)
    np.testing.assert_allclose(weights[:-1], theta, rtol=0, atol=1e-12)
    assert abs(weights[-1] - theta0) < 1e-12
    np.testing.assert_allclose(p[used], ps, rtol=0, atol=1e-12)
    assert np.isnan(p[~used]).all() and np.isnan(loss[status != LABELED]).all()
    # River's LogLoss, fed the kernel's probabilities as River's binary metrics take them.
    metric = river_metrics.LogLoss()
    for row_p, target in zip(p[status == LABELED], values[status == LABELED, -1], strict=True):
        metric.update(bool(target), {False: 1.0 - row_p, True: row_p})
    assert state[classspec.LOSS_N] == (status == LABELED).sum()
    assert bits([state[classspec.LOSS_MEAN]]) == bits([metric.get()])


@pytest.mark.parametrize("which", WHICH)
def test_softmax_equals_the_numpy_loop_and_rivers_cross_entropy(which):
    k = 4
    values = multiclass_block(2000, 5, k, seed=3)
    status = mixed_status(2000, seed=4)
    classes = values[:, -1].astype(np.int64)
    row, weights, state, p, loss = run_softmax(which, values, status, classes, 0.05, k)
    assert row == 2000
    used = (status == LABELED) | (status == UNLABELED)
    X, y = values[used, :-1], values[used, -1]
    W, b, ps = softmax_oracle(X, y, k, 0.05, status[used] == LABELED)
    np.testing.assert_allclose(weights[:, :-1], W, rtol=0, atol=1e-12)
    np.testing.assert_allclose(weights[:, -1], b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p[used], ps, rtol=0, atol=1e-12)
    metric = river_metrics.CrossEntropy()
    losses = []
    for row_p, target in zip(p[status == LABELED], classes[status == LABELED], strict=True):
        proba = dict(enumerate(row_p.tolist()))
        losses.append(metric._eval(int(target), proba))
        metric.update(int(target), proba)
    assert bits(loss[status == LABELED]) == bits(losses)
    assert bits([state[classspec.LOSS_MEAN]]) == bits([metric.get()])


@_NOT_BUILT
@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_logistic_is_its_specification_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    # Large features too: |z| past 30 and 700 (p exactly 0 or 1, the clamped log loss).
    values = binary_block(1500, int(rng.integers(1, 12)), seed, scale=[1.0, 50.0, 1e3][seed % 3])
    status = mixed_status(1500, seed)
    lr = float(rng.choice([0.001, 0.05, 0.5]))
    weights = rng.normal(size=values.shape[1])
    state = np.array([7.0, 0.25])  # a running mean carried over from earlier blocks
    outs = [
        run_logistic(which, values, status, lr, weights.copy(), state.copy(), start=5, stop=1400)
        for which in ("c", "python")
    ]
    (row_c, *arrays_c), (row_py, *arrays_py) = outs
    assert row_c == row_py == 1400
    for a, b in zip(arrays_c, arrays_py, strict=True):
        assert bits(a) == bits(b)


@_NOT_BUILT
@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_softmax_is_its_specification_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 9))
    values = multiclass_block(1200, int(rng.integers(1, 9)), k, seed)
    values[:, :-1] *= [1.0, 30.0, 400.0][seed % 3]
    status = mixed_status(1200, seed)
    classes = values[:, -1].astype(np.int64)
    weights = rng.normal(size=(k, values.shape[1]))
    state = np.array([3.0, 1.5])
    outs = [
        run_softmax(which, values, status, classes, 0.1, k, weights.copy(), state.copy())
        for which in ("c", "python")
    ]
    (row_c, *arrays_c), (row_py, *arrays_py) = outs
    assert row_c == row_py == 1200
    for a, b in zip(arrays_c, arrays_py, strict=True):
        assert bits(a) == bits(b)


@pytest.mark.parametrize("which", WHICH)
def test_logistic_stops_at_a_target_that_is_not_a_code_or_a_non_finite_score(which):
    values = binary_block(20, 2, seed=5)
    values[7, -1] = 2.0  # a class code the binary model cannot have
    status = np.full(20, LABELED, dtype=np.int8)
    row, weights, state, p, _ = run_logistic(which, values, status, 0.1)
    assert row == 7 and state[classspec.LOSS_N] == 7.0
    learned = weights.copy()
    values[7, -1] = 1.0
    values[9, 0] = math.inf  # z is infinite (or NaN): the record path decides
    row, weights, state, p, _ = run_logistic(which, values, status, 0.1, weights, state, start=7)
    assert row == 9 and state[classspec.LOSS_N] == 9.0 and not np.array_equal(weights, learned)
    assert np.isnan(p[9])


@pytest.mark.parametrize("which", WHICH)
def test_softmax_stops_at_a_class_new_to_the_model(which):
    values = multiclass_block(30, 3, 3, seed=6)
    status = np.full(30, LABELED, dtype=np.int8)
    status[4] = UNLABELED
    classes = values[:, -1].astype(np.int64)
    classes[4] = -1  # unlabeled: its class is not read
    classes[12] = 3  # the model has classes 0..2
    row, _, state, p, _ = run_softmax(which, values, status, classes, 0.1, 3)
    assert row == 12 and state[classspec.LOSS_N] == 11.0
    np.testing.assert_allclose(p[:12].sum(axis=1), 1.0, rtol=0, atol=1e-15)
    classes[12] = -1  # a class the space has and the model does not: the same
    assert run_softmax(which, values, status, classes, 0.1, 3)[0] == 12
    # A model without any class yet predicts nothing: the record path takes the block.
    assert run_softmax(which, values, status, classes, 0.1, 0)[0] == 0


@_NOT_BUILT
def test_the_classifier_kernels_refuse_arrays_out_of_range():
    values = binary_block(4, 2, seed=0)
    status = np.zeros(4, dtype=np.int8)
    args = [values, status, 0, 4, np.zeros(3), 0.1, np.zeros(2), np.zeros(4), np.zeros(4)]
    for index, bad in [(3, 5), (2, -1), (4, np.zeros(4)), (6, np.zeros(1)), (7, np.zeros(3))]:
        wrong = list(args)
        wrong[index] = bad
        with pytest.raises(ValueError, match="out of range"):
            _kernels.learn_logistic(*wrong)
    wrong = list(args)
    wrong[4] = np.zeros(3, dtype=np.float32)
    with pytest.raises(TypeError, match="weights"):
        _kernels.learn_logistic(*wrong)
    assert _kernels.learn_logistic(*args) == 4
    curve = [np.zeros(4), np.array([0, 2, 0, 0, 0, 0]), np.zeros((3, 3))]
    for index, bad in [
        (0, np.zeros(3)),  # the losses and their partial sums: an even length
        (1, np.array([0, 2, 2, 0, 0, 0])),  # the next slot past the ring
        (1, np.array([0, 0, 0, 0, 0, 0])),  # no stride
        (1, np.array([0, 2, 0, 1, 0, 2])),  # partial sums past the ring's length
        (2, np.zeros((2, 3))),  # no room for 4 // 2 + 1 points
    ]:
        wrong = list(curve)
        wrong[index] = bad
        with pytest.raises(ValueError, match="out of range"):
            _kernels.learn_logistic(*args, *wrong)
    with pytest.raises(TypeError, match="go together"):
        _kernels.learn_logistic(*args, *curve[:2])
    assert _kernels.learn_logistic(*args, *curve) == 4
    classes = np.zeros(4, dtype=np.int64)
    sargs = [values, status, classes, 0, 4, np.zeros((2, 3)), 0.1, np.zeros(2)]
    sargs += [np.zeros((4, 2)), np.zeros(4)]
    for index, bad in [
        (8, np.zeros((4, 3))),  # a probability per class: 2, not 3
        (8, np.zeros((3, 2))),  # no room for every row
        (2, np.zeros(3, dtype=np.int64)),
        (5, np.zeros((2, 4))),  # no room for the target column
    ]:
        wrong = list(sargs)
        wrong[index] = bad
        with pytest.raises(ValueError, match="out of range"):
            _kernels.learn_softmax(*wrong)
    assert _kernels.learn_softmax(*sargs) == 4


def test_the_compiled_constants_are_the_python_ones():
    if _kernels is None and os.environ.get("CI") != "true":
        pytest.skip("the extension is not built")
    assert (_kernels.LOSS_N, _kernels.LOSS_MEAN) == (classspec.LOSS_N, classspec.LOSS_MEAN)
    assert _kernels.N_CURVE == classspec.N_CURVE
    assert _kernels.N_LOSS_STATE == classspec.N_LOSS_STATE


# -- the block learner: a ClassLearner's state, block by block = record by record -----------


def block_kernels(which: str):
    from streamlearn.fast import classblock

    if which == "python":
        return classblock.python_class_kernels()
    return classblock.compiled_class_kernels()


def lines_of(X: np.ndarray, labels: list[str]) -> list[bytes]:
    return [
        (",".join(f"{v:.4f}" for v in row) + f",{label}\n").encode()
        for row, label in zip(X, labels, strict=True)
    ]


def learn_both(lines, names, make_space, make_model, *, kernels, window=50, max_points=4096):
    """The same lines learned record by record and (after the first) in blocks.

    Where the kernel stops (a class new to the model), that row is learned record by record
    and the block goes on after it. Returns both learners and how often the kernel stopped.
    """
    from streamlearn.classify.learner import ClassLearner
    from streamlearn.curve import Curve
    from streamlearn.fast.classblock import ClassBlockLearner
    from streamlearn.records import CsvDecoder, Record
    from streamlearn.sources.base import Raw

    raws, offset = [], 0
    for line in lines:
        raws.append(Raw(line, offset))
        offset += len(line)
    learners, stops = [], 0
    for blocks in (False, True):
        space, model = make_space(), make_model()
        learner = ClassLearner(model, space, rolling_window=window)
        learner.curve, learner.loss_curve = Curve(max_points), Curve(max_points)
        decoder = CsvDecoder([*names, "y"], classes=space)

        def step(item, learner=learner):
            if type(item) is Record and item.y is not None:
                learner.step(item.x, item.y)

        if not blocks:
            for item in decoder.decode_batch(raws):
                step(item)
            learners.append(learner)
            continue
        step(decoder.decode(raws[0]))  # the model learns its features (softmax: a class)
        fast = ClassBlockLearner(names, space, kernels)
        parsed = fast.parse_lines(b"".join(lines[1:]), raws[1].offset, decoder)
        row = 0
        while row < parsed.rows:
            row = fast.learn(learner, model, parsed, row, parsed.rows)
            if row < parsed.rows:
                stops += 1
                step(decoder.decode(parsed.raw(row)))
                row += 1
        learners.append(learner)
    return learners[0], learners[1], stops


def assert_same_learner(slow, fast) -> None:
    """The same model (weights to the bit) and the same prequential state."""
    from streamlearn.models.softmax import SoftmaxRegression

    model, other = slow.model, fast.model
    if isinstance(model, SoftmaxRegression):
        assert model.classes == other.classes
        for c in model.classes:
            assert bits(list(model.weights[c].values())) == bits(list(other.weights[c].values()))
        assert bits(list(model.intercepts.values())) == bits(list(other.intercepts.values()))
    else:
        assert list(model.weights) == list(other.weights)
        assert bits([*model.weights.values(), model.intercept]) == bits(
            [*other.weights.values(), other.intercept]
        )
    assert_same_scores(slow, fast)


def assert_same_scores(slow, fast) -> None:
    """The same prequential state: counts, running mean, window, curve, summaries."""
    assert (slow.records_learned, slow.records_unscored) == (
        fast.records_learned,
        fast.records_unscored,
    )
    a, b = slow.metrics, fast.metrics
    assert (a.confusion, a.scored, a.right, a.pos_bins, a.neg_bins) == (
        b.confusion, b.scored, b.right, b.pos_bins, b.neg_bins
    )  # fmt: skip
    assert bits([a.loss.n, a.loss.get()]) == bits([b.loss.n, b.loss.get()])
    w, v = slow.window, fast.window
    assert (w.next, w.len, w.right) == (v.next, v.len, v.right)
    assert (list(w.y), list(w.pred)) == (list(v.y), list(v.pred))
    assert bits(list(w.loss)) == bits(list(v.loss)) and bits(list(w.p_pos)) == bits(list(v.p_pos))
    assert slow.curve.stride == fast.curve.stride
    assert [bits(p) for p in slow.curve.points] == [bits(p) for p in fast.curve.points]
    assert slow.summary() == fast.summary()
    assert slow.rolling_summary() == fast.rolling_summary()


@pytest.mark.parametrize("which", WHICH)
def test_the_log_loss_curve_of_blocks_equals_record_by_record(which):
    from streamlearn.classify.space import ClassSpace
    from streamlearn.models.logistic import LogisticRegression

    lines, names = binary_lines(3000, seed=1)
    slow, fast, _ = learn_both(
        lines,
        names,
        lambda: ClassSpace(binary=True),
        lambda: LogisticRegression(lr=0.1),
        kernels=block_kernels(which),
        window=7,
        max_points=64,
    )
    assert slow.loss_curve.stride == fast.loss_curve.stride
    assert [bits(p) for p in slow.loss_curve.points] == [bits(p) for p in fast.loss_curve.points]


def test_the_kernels_loss_points_are_the_specifications():
    """The ring, the counters and every bit of the points, C against Python, from a ring not
    yet full (the first slots) and from a full one (its next slot mid-ring)."""
    if _kernels is None and os.environ.get("CI") != "true":
        pytest.skip("the extension is not built")
    values = binary_block(500, 4, seed=3)
    status = mixed_status(500, seed=4)
    sm_values = multiclass_block(500, 4, 3, seed=5)
    classes = sm_values[:, -1].astype(np.int64)
    for ring0, curve0 in [
        ([0.0] * 14, [0, 3, 0, 0, 0, 0]),
        ([0.5, 2.0, 1.0, 0.25, 0.0, 0.0, 0.0, 0.0], [41, 4, 2, 4, 0, 0]),
    ]:
        made = []
        for which in ("c", "python"):
            ring, curve = np.array(ring0), np.array(curve0, dtype=np.int64)
            points = np.full((500 // curve0[1] + 1, 3), np.nan)
            row = run_logistic(which, values, status, 0.1, ring=(ring, curve, points))[0]
            sm_ring, sm_curve = np.array(ring0), np.array(curve0, dtype=np.int64)
            sm_points = np.full((500 // curve0[1] + 1, 3), np.nan)
            run_softmax(
                which, sm_values, status, classes, 0.1, 3, ring=(sm_ring, sm_curve, sm_points)
            )
            made.append(
                [
                    row,
                    bits(ring),
                    list(curve),
                    bits(points),
                    bits(sm_ring),
                    list(sm_curve),
                    bits(sm_points),
                ]
            )
        assert made[0] == made[1]
        assert made[0][2][classspec.CURVE_POINTS] > 100 and made[0][5][classspec.CURVE_POINTS] > 100


def binary_lines(n: int, seed: int) -> tuple[list[bytes], list[str]]:
    """1/0 labels as the parser reads them, and now and then a label the decoder must judge."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    labels = [str(int(v)) for v in (X @ [1.0, -2.0, 0.5] + rng.normal(size=n) > 0)]
    odd = ["1.0", "0.0", "1e0", "-0", "yes", "2", "", " 1", "true", "0.5", '"1"']
    for i in rng.choice(np.arange(1, n), size=n // 20, replace=False):
        labels[i] = str(rng.choice(odd))
    return lines_of(X, labels), ["a", "b", "c"]


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("window", [7, 1000])
def test_a_binary_block_leaves_the_learner_as_record_by_record(which, window):
    from streamlearn.classify.space import ClassSpace
    from streamlearn.models.logistic import LogisticRegression

    lines, names = binary_lines(3000, seed=1)
    slow, fast, stops = learn_both(
        lines,
        names,
        lambda: ClassSpace(binary=True),
        lambda: LogisticRegression(lr=0.1),
        kernels=block_kernels(which),
        window=window,
        max_points=64,  # the curve thins several times
    )
    assert stops == 0
    assert_same_learner(slow, fast)
    assert fast.metrics.scored > 2800 and fast.curve.stride > 1


@pytest.mark.parametrize("which", WHICH)
def test_positive_class_zero_flips_the_codes_of_the_numbers(which):
    from streamlearn.classify.space import ClassSpace
    from streamlearn.models.logistic import LogisticRegression

    lines, names = binary_lines(1500, seed=2)
    slow, fast, _ = learn_both(
        lines,
        names,
        lambda: ClassSpace(binary=True, positive="0"),
        lambda: LogisticRegression(lr=0.05),
        kernels=block_kernels(which),
    )
    assert_same_learner(slow, fast)
    assert fast.classes.positive == "0" and fast.summary()["confusion"]["0"]


def multiclass_lines(n: int, seed: int) -> tuple[list[bytes], list[str]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    scores = X @ rng.normal(size=(3, 4)) + rng.normal(size=(n, 4))
    labels = [str(c) for c in scores.argmax(axis=1)]
    labels[n // 2] = "17"  # a class first seen in the middle of a block
    odd = ["3.0", "03", "-0", "+1", "cat", "", "1e0", " 2"]
    for i in rng.choice(np.arange(1, n), size=n // 25, replace=False):
        labels[i] = str(rng.choice(odd))
    return lines_of(X, labels), ["a", "b", "c"]


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("window", [5, 500])
def test_a_multiclass_block_leaves_the_learner_as_record_by_record(which, window):
    from streamlearn.classify.space import ClassSpace
    from streamlearn.models.softmax import SoftmaxRegression

    lines, names = multiclass_lines(2500, seed=3)
    slow, fast, stops = learn_both(
        lines,
        names,
        lambda: ClassSpace(binary=False),
        lambda: SoftmaxRegression(lr=0.1),
        kernels=block_kernels(which),
        window=window,
        max_points=32,
    )
    assert stops >= 4  # each class new to the model ("cat", "3.0", "17", ...) stops the kernel
    assert_same_learner(slow, fast)
    assert {"0", "1", "2", "3", "17", "cat", "3.0"} <= set(fast.classes.labels)
    # The cross-entropy curve, made by the softmax kernel, to the bit.
    assert slow.loss_curve.stride == fast.loss_curve.stride
    assert [bits(p) for p in slow.loss_curve.points] == [bits(p) for p in fast.loss_curve.points]


# -- whole replays: the block path = record by record ----------------------------------------


def write_class_stream(path, n: int, seed: int, *, binary: bool) -> None:
    """A CSV of 4 features and a class label, with every kind of row the decoder must judge:
    bad features, text and odd labels, third or new classes, unlabeled rows, CRLF."""
    import random

    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    X = rng.normal(size=(n, 4)) * [0.1, 1.0, 3.0, 1.0]
    if binary:
        labels = [str(int(v)) for v in (X @ [2.0, -1.0, 0.3, 0.5] + rng.normal(size=n) > 0)]
        odd = ["1.0", "0.0", "yes", "2", " 1", "true", "-0", "1e0"]
    else:
        scores = X @ rng.normal(size=(4, 3)) + rng.normal(scale=0.5, size=(n, 3))
        labels = [str(c) for c in scores.argmax(axis=1)]
        odd = ["3.0", "03", "cat", " 2", "+1", "-5"]
        labels[n // 3] = "9"  # a class first seen mid-stream
    bad = [
        b"1.0,2.0,3.0\n", b"1,oops,2,3,1\n", b"nan,1,2,3,0\n", b"1,2,3,4,5,6\n", b"\xff\xfe,1,2,3,1\n",
        b"x0,x1,x2,x3,y\n", b"\n",
    ]  # fmt: skip
    with open(path, "wb") as handle:
        handle.write(b"x0,x1,x2,x3,y\n")
        for i in range(n):
            if pick.random() < 0.01:
                handle.write(pick.choice(bad))
            label = labels[i]
            chance = pick.random()
            if chance < 0.03:
                label = pick.choice(odd)
            elif chance < 0.06:
                label = ""  # unlabeled
            if pick.random() < 0.01:  # exact, but not in the parser's subset: the decoder reads it
                line = ",".join(repr(float(v)) for v in X[i])
            else:
                line = ",".join(f"{v:.6f}" for v in X[i])
            end = b"\r\n" if pick.random() < 0.01 else b"\n"
            handle.write(f"{line},{label}".encode() + end)


def run_class_daemon(
    path, tmp, *, fast: bool, binary: bool, monkeypatch, monitor=None, make=None, every_row=False
):
    """One replay of a classifier (logistic or softmax); every due checkpoint taken on time.

    ``monitor(space)``, if given, makes the drift monitor; ``make()`` the model (else
    ``logistic`` or ``softmax``); ``every_row``: ``--predictions-all``. Returns the summary, the last checkpoint's state, where each
    checkpoint was taken, the paths chosen, the folder.
    """
    from streamlearn.classify.learner import ClassLearner
    from streamlearn.classify.space import ClassSpace
    from streamlearn.loop.daemon import Daemon, RunOptions
    from streamlearn.models.logistic import LogisticRegression
    from streamlearn.models.softmax import SoftmaxRegression
    from streamlearn.records import CsvDecoder
    from streamlearn.sinks.jsonlines import JsonLinesSink
    from streamlearn.sources.file import FileSource
    from streamlearn.state import BackgroundWriter, CheckpointStore

    def model():
        if make is not None:
            return make()
        return LogisticRegression(lr=0.05) if binary else SoftmaxRegression(lr=0.05)

    monkeypatch.setenv("STREAMLEARN_FASTPATH", "1" if fast else "0")
    tmp.mkdir()
    space = ClassSpace(binary=binary)
    dead, predictions = JsonLinesSink(tmp / "dead.jsonl"), JsonLinesSink(tmp / "pred.jsonl")
    store = CheckpointStore(tmp / "state")
    daemon = Daemon(
        FileSource(path),
        CsvDecoder(["x0", "x1", "x2", "x3", "y"], classes=space),
        ClassLearner(model(), space, rolling_window=100),
        model_spec="logistic" if binary else "softmax",
        store=store,
        dead_letters=dead,
        predictions=predictions,
        options=RunOptions(checkpoint_every=1000),
        model_factory=model,
        monitor=None if monitor is None else monitor(space),
        divergence_factor=100.0,
    )
    daemon.router.predictions_all = every_row
    positions = []
    checkpoint = daemon.checkpoint

    def recording_checkpoint(*, wait: bool = False) -> None:
        positions.append((daemon.source.snapshot()["offset"], daemon.counters.records_seen))
        checkpoint(wait=wait)

    daemon.checkpoint = recording_checkpoint  # type: ignore[method-assign]
    paths = []
    choose = daemon_module().choose_path

    def recording_choice(kit):
        path = choose(kit)
        paths.append(path.name)
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BackgroundWriter, "idle", property(lambda self: True))
        patch.setattr(daemon_module(), "choose_path", recording_choice)
        daemon.path = recording_choice(daemon.kit)
        summary = daemon.run()
    for sink in (dead, predictions):
        sink.close()
    state = store.load().state
    store.close()
    return summary, state, positions, paths, tmp


def daemon_module():
    from streamlearn.loop import daemon

    return daemon


def assert_same_class_run(fast, slow, path: str = "class-block") -> None:
    fast_summary, fast_state, fast_positions, fast_paths, fast_dir = fast
    slow_summary, slow_state, slow_positions, slow_paths, slow_dir = slow
    assert path in fast_paths and path not in slow_paths
    for key in ("created", "checkpoint"):
        fast_summary.pop(key, None), slow_summary.pop(key, None)
    assert json.dumps(fast_summary, sort_keys=True) == json.dumps(slow_summary, sort_keys=True)
    if path == "class-block":
        assert_same_learner(slow_state["learner"], fast_state["learner"])
    else:  # a River model (GaussianNB's pickle holds unseeded random states): its answers
        slow_learner, fast_learner = slow_state["learner"], fast_state["learner"]
        rng = np.random.default_rng(0)
        for row in rng.normal(size=(200, 4)).tolist():
            x = dict(zip(["x0", "x1", "x2", "x3"], row, strict=True))
            slow_answer = slow_learner.model.predict_proba_one(x)
            assert bits(list(slow_answer.values())) == bits(
                list(fast_learner.model.predict_proba_one(x).values())
            )
        assert_same_scores(slow_learner, fast_learner)
    assert fast_state["counters"] == slow_state["counters"]
    assert fast_state["source"] == slow_state["source"]
    assert fast_positions == slow_positions  # every checkpoint at the same line and byte
    for name in ("dead.jsonl", "pred.jsonl"):
        assert (fast_dir / name).read_bytes() == (slow_dir / name).read_bytes(), name


@pytest.mark.parametrize(
    ("binary", "every_row"),
    [(True, False), (False, False), (True, True)],
    ids=["logistic", "softmax", "logistic-predictions-all"],
)
def test_a_replay_through_blocks_equals_the_record_by_record_replay(
    tmp_path, monkeypatch, binary, every_row
):
    path = tmp_path / "stream.csv"
    write_class_stream(path, 6000, seed=5, binary=binary)
    fast, slow = (
        run_class_daemon(
            path,
            tmp_path / name,
            fast=name == "fast",
            binary=binary,
            monkeypatch=monkeypatch,
            every_row=every_row,
        )
        for name in ("fast", "slow")
    )
    assert_same_class_run(fast, slow)
    summary = fast[0]
    assert summary["records_rejected"] > 20 and summary["records_unlabeled"] > 100
    reasons = summary["rejected_by_reason"]
    assert reasons.get("third_class" if binary else "non_numeric", 0) >= 1
    assert summary["metrics"]["accuracy"] > 0.6
    lines = (tmp_path / "fast" / "pred.jsonl").read_text().splitlines()
    labeled = [line for line in lines if '"label"' in line]
    assert len(labeled) == (summary["records_learned"] if every_row else 0)


def test_a_drift_monitor_that_resets_the_classifier_mid_block(tmp_path, monkeypatch):
    from streamlearn.drift.monitor import DriftConfig, DriftMonitor

    path = tmp_path / "drift.csv"
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6000, 4))
    before, after = np.array([2.0, 1.0, -1.0, 0.5]), np.array([-2.0, -1.0, 1.0, -0.5])
    margin = np.where(np.arange(6000) < 3000, X @ before, X @ after)
    labels = (margin + 0.3 * rng.normal(size=6000) > 0).astype(int)
    with open(path, "w") as handle:
        handle.write("x0,x1,x2,x3,y\n")
        for row, label in zip(X, labels, strict=True):
            handle.write(",".join(f"{v:.6f}" for v in row) + f",{label}\n")

    def monitor(space):
        return DriftMonitor(DriftConfig(on_drift="reset"), classes=space)

    from streamlearn.fast.classblock import ClassBlockLearner

    restores = []
    restore = ClassBlockLearner.restore

    def counting_restore(self, *args):
        restores.append(1)
        return restore(self, *args)

    monkeypatch.setattr(ClassBlockLearner, "restore", counting_restore)

    fast = run_class_daemon(
        path, tmp_path / "fast", fast=True, binary=True, monkeypatch=monkeypatch, monitor=monitor
    )
    slow = run_class_daemon(
        path, tmp_path / "slow", fast=False, binary=True, monkeypatch=monkeypatch, monitor=monitor
    )
    assert fast[0]["drift"]["actions"]["reset"] >= 1
    assert restores  # the reset came in the middle of a block: learned again up to it
    assert fast[0]["drift_events"] == slow[0]["drift_events"]
    assert_same_class_run(fast, slow)


@pytest.mark.parametrize(
    ("binary", "spec"),
    [
        (True, "LogisticRegression(optimizer=SGD(lr=0.05))"),
        (True, "GaussianNB"),  # ties and one-class answers at the start
        (True, "HoeffdingTreeClassifier(grace_period=50)"),
        (False, "GaussianNB"),
        (False, "StandardScaler | SoftmaxRegression"),
    ],
)
def test_a_river_classifier_through_rows_blocks_equals_record_by_record(
    tmp_path, monkeypatch, binary, spec
):
    from streamlearn.models.registry import build_model

    path = tmp_path / "stream.csv"
    write_class_stream(path, 3000, seed=7, binary=binary)
    runs = [
        run_class_daemon(
            path,
            tmp_path / name,
            fast=fast,
            binary=binary,
            monkeypatch=monkeypatch,
            make=lambda: build_model(spec),
        )
        for name, fast in (("fast", True), ("slow", False))
    ]
    assert_same_class_run(*runs, path="class-rows-block")
    assert runs[0][0]["records_learned"] > 2500
