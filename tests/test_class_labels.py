"""A classifier's labels: text to class codes (ClassSpace), the decoders in label mode, the
flags that set the classes, and the bad labels that become dead letters."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhelpers import cli
from streamlearn.classify.build import class_space_for, decide_task
from streamlearn.classify.space import (
    MAX_CLASSES_CAP,
    ClassSetupError,
    ClassSpace,
    Refusal,
)
from streamlearn.classify.task import binary_only, error, infer_task, predicted
from streamlearn.config import AppError, AppUsageError, Settings
from streamlearn.json_decoder import JsonDecoder
from streamlearn.records import REJECT_REASONS, CsvDecoder, Label, Record, Rejected
from streamlearn.sources.base import Raw

# -- ClassSpace: the binary pairs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("positive", "negative"),
    [
        ("1", "0"),
        ("true", "false"),
        ("True", "False"),
        ("TRUE", "false"),
        ("yes", "no"),
        ("Yes", "No"),
        ("YES", "nO"),
    ],
)
@pytest.mark.parametrize("negative_first", [True, False])
def test_a_known_pair_needs_no_flag_and_its_first_member_is_positive(
    positive: str, negative: str, negative_first: bool
) -> None:
    space = ClassSpace(binary=True)
    order = [negative, positive] if negative_first else [positive, negative]
    codes = [space.encode(label) for label in order]
    assert codes == ([0.0, 1.0] if negative_first else [1.0, 0.0])
    assert space.labels == [negative, positive]
    assert space.positive == positive and space.positive_code == 1
    # any case of the same pair is the same class, shown as first seen
    assert space.encode(positive.swapcase()) == 1.0
    assert space.encode(negative.upper()) == 0.0
    assert space.labels == [negative, positive]


@pytest.mark.parametrize(
    ("text", "code"),
    [("1", 1.0), ("1.0", 1.0), ("1.00", 1.0), ("1e0", 1.0), ("0", 0.0), ("0.0", 0.0),
     ("-0", 0.0), ("0e5", 0.0), (" 1 ", 1.0)],
)  # fmt: skip
def test_one_and_zero_count_by_value_and_read_as_1_and_0(text: str, code: float) -> None:
    space = ClassSpace(binary=True)
    assert space.encode(text) == code
    assert space.labels == ["0", "1"]  # as the compiled parser, which reads a number, shows them
    assert space.encode("2").reason == "third_class"
    assert space.encode("yes").reason == "third_class"  # another pair is a third class


def test_a_pair_member_given_as_positive_class_swaps_the_codes() -> None:
    space = ClassSpace(binary=True, positive="no")
    assert [space.encode(label) for label in ("yes", "No", "NO", "YES")] == [0.0, 1.0, 1.0, 0.0]
    assert space.positive == "No" and space.labels == ["yes", "No"]
    numbers = ClassSpace(binary=True, positive="0")
    assert [numbers.encode(label) for label in ("1", "0.0")] == [0.0, 1.0]
    assert numbers.labels == ["1", "0"]


def test_other_labels_need_the_positive_class_at_the_first_record() -> None:
    space = ClassSpace(binary=True)
    with pytest.raises(ClassSetupError) as caught:
        space.encode("spam")
    message = str(caught.value)
    assert "'spam'" in message and "--positive-class spam" in message
    assert "1/0, true/false, yes/no" in message
    assert caught.value.option == "positive-class"
    assert isinstance(caught.value, AppUsageError)


def test_a_positive_class_of_any_labels_is_matched_exactly() -> None:
    space = ClassSpace(binary=True, positive="spam")
    assert space.labels == ["0", "spam"]  # the negative class not seen yet reads as its code
    assert [space.encode(label) for label in ("ham", "spam", " ham ")] == [0.0, 1.0, 0.0]
    assert space.labels == ["ham", "spam"]
    refused = space.encode("Spam")  # not a known pair: exact text
    assert refused == Refusal(
        "third_class", "'Spam' is a third class for a binary model (classes 'ham', 'spam')"
    )


# -- ClassSpace: fixed classes, growth, bounds ---------------------------------------------


def test_fixed_classes_have_their_order_as_codes_and_refuse_others() -> None:
    space = ClassSpace(binary=False, classes=["c", "a", "b"])
    assert [space.encode(label) for label in ("a", "b", "c")] == [1.0, 2.0, 0.0]
    refused = space.encode("d")
    assert refused.reason == "unknown_class" and "'d'" in refused.detail
    assert space.labels == ["c", "a", "b"]  # the refused label is not added


def test_fixed_binary_classes() -> None:
    mail = ClassSpace(binary=True, classes=["spam", "ham"], positive="spam")
    assert mail.labels == ["ham", "spam"] and mail.encode("ham") == 0.0
    assert mail.encode("eggs").reason == "third_class"
    assert ClassSpace(binary=True, classes=["yes", "no"]).labels == ["no", "yes"]
    with pytest.raises(ClassSetupError, match="--positive-class ham or --positive-class spam"):
        ClassSpace(binary=True, classes=["ham", "spam"])
    with pytest.raises(ValueError, match="two --classes, not 3"):
        ClassSpace(binary=True, classes=["a", "b", "c"], positive="a")
    with pytest.raises(ValueError, match="not one of --classes"):
        ClassSpace(binary=True, classes=["a", "b"], positive="c")
    with pytest.raises(ValueError, match="twice"):
        ClassSpace(binary=False, classes=["a", "b", "a"])


def test_growth_stops_at_max_classes() -> None:
    space = ClassSpace(binary=False, max_classes=3)
    assert [space.encode(label) for label in ("x", "y", "z")] == [0.0, 1.0, 2.0]
    refused = space.encode("w")
    assert refused.reason == "too_many_classes" and "--max-classes 3" in refused.detail
    assert space.encode("w").reason == "too_many_classes"  # every time, never added
    assert space.encode("y") == 1.0  # the known ones still are
    assert space.labels == ["x", "y", "z"]


def test_bounds_are_checked_before_anything_is_allocated() -> None:
    with pytest.raises(ValueError, match="max_classes"):
        ClassSpace(binary=False, max_classes=10**12)
    with pytest.raises(ValueError, match="max_classes"):
        ClassSpace(binary=False, max_classes=0)
    with pytest.raises(ValueError, match="more than --max-classes 2"):
        ClassSpace(binary=False, classes=["a", "b", "c"], max_classes=2)
    assert ClassSpace(binary=False, max_classes=MAX_CLASSES_CAP).max_classes == MAX_CLASSES_CAP


def test_a_label_over_256_characters_is_too_long() -> None:
    space = ClassSpace(binary=False)
    assert space.encode("a" * 256) == 0.0
    refused = space.encode("b" * 257)
    assert refused.reason == "too_long" and "257" in refused.detail
    assert len(space) == 1
    with pytest.raises(ValueError, match="257 characters"):
        ClassSpace(binary=False, classes=["c" * 257])


def test_the_new_reasons_are_in_the_closed_set() -> None:
    assert {"unknown_class", "third_class", "too_many_classes", "too_long"} <= set(REJECT_REASONS)


def test_what_the_model_sees_and_answers() -> None:
    binary = ClassSpace(binary=True)
    binary.encode("no")
    assert binary.model_label(1.0) is True and binary.model_label(0.0) is False
    assert [binary.code_of(v) for v in (True, False, 1, 0, "True", None)] == [
        1,
        0,
        1,
        0,
        None,
        None,
    ]
    assert binary.proba({True: 0.8}) == (0.0, 0.8)  # a missing class counts 0
    assert binary.proba({}) is None and binary.proba(None) is None
    assert binary.proba_json((0.2, 0.8)) == {"no": 0.2, "yes": 0.8}
    multi = ClassSpace(binary=False)
    for label in ("cat", "dog"):
        multi.encode(label)
    assert multi.model_label(1.0) == "dog" and multi.code_of("cat") == 0
    assert multi.code_of("cow") is None and multi.code_of(0) is None
    proba = multi.proba({"dog": 0.25, "cat": 0.75, "cow": 1.0})  # by code; unknown keys dropped
    assert proba == (0.75, 0.25)
    multi.encode("cow")  # a class added after the prediction reads 0
    assert multi.proba_json(proba) == {"cat": 0.75, "dog": 0.25, "cow": 0.0}
    assert predicted((0.2, 0.4, 0.4)) == 1 and error(2.0, (0.2, 0.4, 0.4)) == 1.0


def test_a_space_pickles_with_its_codes_and_goes_on_as_the_original() -> None:
    for space in (ClassSpace(binary=False, max_classes=5), ClassSpace(binary=True, positive="b")):
        for label in ("a", "b", " a"):
            space.encode(label)
        copy = pickle.loads(pickle.dumps(space))
        assert (copy.labels, copy.positive, copy.max_classes) == (
            space.labels,
            space.positive,
            space.max_classes,
        )
        more = ["c", "b", "a", "d"]
        assert [copy.encode(label) for label in more] == [space.encode(label) for label in more]


def test_numeric_codes_do_not_change_the_space() -> None:
    space = ClassSpace(binary=False)
    for label in ("3", "3.0", "03", "+3", "-2", "-0", "1" * 16):
        space.encode(label)
    assert space.numeric_codes() == {3.0: 0, -2.0: 4}
    assert len(space) == 7
    assert ClassSpace(binary=True).numeric_codes() == {}  # the pair is not known yet
    yes = ClassSpace(binary=True)
    yes.encode("yes")
    assert yes.numeric_codes() == {}


# -- the task ------------------------------------------------------------------------------


def test_the_task_and_binary_models() -> None:
    from river import compose, linear_model, naive_bayes, preprocessing, tree

    from streamlearn.models.registry import build_model

    assert infer_task(build_model("logistic")) == "classification"
    assert binary_only(build_model("logistic")) is True
    assert infer_task(build_model("sgd")) == "regression"
    assert binary_only(build_model("sgd")) is False
    for model in (
        linear_model.LogisticRegression(),
        linear_model.Perceptron(),
        linear_model.PAClassifier(),
        preprocessing.StandardScaler() | linear_model.PAClassifier(),
    ):
        assert (infer_task(model), binary_only(model)) == ("classification", True)
    pipeline = compose.Pipeline(preprocessing.StandardScaler(), tree.HoeffdingTreeClassifier())
    for model in (naive_bayes.GaussianNB(), pipeline, linear_model.SoftmaxRegression()):
        assert (infer_task(model), binary_only(model)) == ("classification", False)


def settings(**given: Any) -> Settings:
    return Settings(source="s.csv", follow=False, **given)


def test_decide_task_refuses_what_a_regressor_cannot_do() -> None:
    from river import linear_model

    regressor = linear_model.LinearRegression()
    assert decide_task(settings(model="LinearRegression"), regressor) == "regression"
    for given, option in (
        ({"task": "classification"}, "task"),
        ({"positive_class": "yes"}, "positive-class"),
        ({"classes": ("a", "b")}, "classes"),
    ):
        with pytest.raises(AppUsageError) as caught:
            decide_task(settings(model="LinearRegression", **given), regressor)
        assert caught.value.option == option and "'LinearRegression'" in str(caught.value)
    with pytest.raises(AppUsageError, match="needs a regressor"):
        decide_task(settings(task="regression"), linear_model.LogisticRegression())


def test_a_restored_space_is_used_and_must_match_the_flags() -> None:
    from river import naive_bayes

    model = naive_bayes.GaussianNB()
    restored = class_space_for(settings(classes=("a", "b")), model)
    again = class_space_for(settings(classes=("a", "b"), max_classes=7), model, restored)
    assert again is restored and restored.max_classes == 7
    assert class_space_for(settings(), model, restored) is restored  # flags left out: as saved
    with pytest.raises(AppError, match="use --reset"):
        class_space_for(settings(classes=("b", "a")), model, restored)
    with pytest.raises(AppError, match="positive class"):
        class_space_for(settings(positive_class="a"), model, restored)
    yes = ClassSpace(binary=True)
    yes.encode("Yes")
    from river import linear_model

    assert class_space_for(settings(positive_class="YES"), linear_model.Perceptron(), yes) is yes
    with pytest.raises(AppUsageError, match="twice"):
        class_space_for(settings(classes=("a", "a")), model)


# -- the decoders in label mode --------------------------------------------------------------


def raws(*lines: bytes) -> list[Raw]:
    out, offset = [], 0
    for line in lines:
        out.append(Raw(line, offset=offset))
        offset += len(line)
    return out


CSV_ROWS = (
    b"a,b,y\n",
    b"1,2,cat\n",
    b"3,4,dog\r\n",
    b"5,6,\n",  # unlabeled
    b"5,6,null\n",  # unlabeled
    b"7,8,  cat  \n",
    b'9,10,"a, b"\n',  # a quoted label with a comma
    b"1,2,class_a\n",  # an underscore in the label, none in the features
    b"1_0,2,cat\n",  # an underscore in a feature: non_numeric on every path
    b"x,2,cat\n",
    b"1,inf,dog\n",
    b"1,2,\xc3\xa7a\n",  # a non-ASCII label
    b"1,2,\xff\n",  # not UTF-8
    b"1,2," + b"z" * 300 + b"\n",
    b"1,2,3,4\n",
)


def decoded(items: list[Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for item in items:
        if isinstance(item, Record):
            out.append(("record", (item.x, item.y)))
        elif isinstance(item, Rejected):
            out.append(("rejected", item.reason))
        else:
            out.append(("other", item))
    return out


def test_csv_labels_on_the_batch_path_equal_line_by_line() -> None:
    header = ["a", "b", "y"]
    batch = CsvDecoder(header, classes=ClassSpace(binary=False)).decode_batch(raws(*CSV_ROWS))
    one = CsvDecoder(header, classes=ClassSpace(binary=False))
    single = [one.decode(raw) for raw in raws(*CSV_ROWS)]
    assert decoded(batch) == decoded(single)
    assert decoded(batch) == [
        ("other", None),
        ("record", ({"a": 1.0, "b": 2.0}, 0.0)),
        ("record", ({"a": 3.0, "b": 4.0}, 1.0)),
        ("record", ({"a": 5.0, "b": 6.0}, None)),
        ("record", ({"a": 5.0, "b": 6.0}, None)),
        ("record", ({"a": 7.0, "b": 8.0}, 0.0)),
        ("record", ({"a": 9.0, "b": 10.0}, 2.0)),
        ("record", ({"a": 1.0, "b": 2.0}, 3.0)),
        ("rejected", "non_numeric"),
        ("rejected", "non_numeric"),
        ("rejected", "non_finite"),
        ("record", ({"a": 1.0, "b": 2.0}, 4.0)),
        ("rejected", "undecodable"),
        ("rejected", "too_long"),
        ("rejected", "field_count"),
    ]
    assert one.classes is not None
    assert one.classes.labels == ["cat", "dog", "a, b", "class_a", "ça"]


def test_a_text_label_never_makes_a_row_non_numeric() -> None:
    # an id column (not the plain layout): the slow path, and late labels
    header = ["id", "a", "y"]
    decoder = CsvDecoder(header, id_column="id", classes=ClassSpace(binary=True))
    items = decoder.decode_batch(
        raws(b"r1,1.5,Yes\n", b"r2,2.5,\n", b"r2,,no\n", b"r3,,maybe\n", b"r4,,\n", b"r5,x,no\n")
    )
    assert isinstance(items[0], Record) and (items[0].id, items[0].y) == ("r1", 1.0)
    assert isinstance(items[1], Record) and items[1].y is None
    assert isinstance(items[2], Label) and (items[2].id, items[2].y) == ("r2", 0.0)
    assert isinstance(items[3], Rejected) and items[3].reason == "third_class"
    assert isinstance(items[4], Rejected) and items[4].reason == "missing_feature"
    assert isinstance(items[5], Rejected) and items[5].reason == "non_numeric"
    assert "feature 'a'" in items[5].detail  # the feature, never the label


def test_a_regression_target_is_still_a_number() -> None:
    decoder = CsvDecoder(["a", "y"])
    items = decoder.decode_batch(raws(b"1,2.5\n", b"1,yes\n"))
    assert isinstance(items[0], Record) and items[0].y == 2.5
    assert isinstance(items[1], Rejected) and items[1].reason == "non_numeric"


@pytest.mark.parametrize(
    ("target", "binary", "expected"),
    [
        ('"yes"', True, 1.0),
        ('" No "', True, 0.0),
        ("1", True, 1.0),
        ("0.0", True, 0.0),
        ("true", True, 1.0),
        ("false", True, 0.0),
        ("2", True, "third_class"),
        ('"cat"', False, 0.0),
        ("2", False, ("2",)),
        ("2.5", False, ("2.5",)),
        ("true", False, ("true",)),
        ("null", False, None),
        ('""', False, None),
        ('"  "', False, None),
        ("[1]", False, "bad_shape"),
        ('{"a": 1}', False, "bad_shape"),
        ("NaN", False, "non_finite"),
    ],
)
def test_json_targets_of_each_type(target: str, binary: bool, expected: Any) -> None:
    space = ClassSpace(binary=binary)
    if expected == "third_class":
        space.encode("0")  # the 1/0 pair, then 2
    decoder = JsonDecoder(classes=space)
    item = decoder.decode(Raw(f'{{"a": 1, "y": {target}}}'.encode(), offset=0))
    if isinstance(expected, str):
        assert isinstance(item, Rejected) and item.reason == expected
    elif isinstance(expected, tuple):  # multiclass: the label is the JSON text
        assert isinstance(item, Record) and item.y == 0.0 and space.labels == list(expected)
    else:
        assert isinstance(item, Record) and item.x == {"a": 1.0} and item.y == expected


def test_json_late_labels_are_codes() -> None:
    decoder = JsonDecoder(classes=ClassSpace(binary=False, classes=["low", "high"]))
    label = decoder.decode(Raw(b'{"id": 7, "y": "high"}', offset=0))
    assert isinstance(label, Label) and (label.id, label.y) == ("7", 1.0)
    refused = decoder.decode(Raw(b'{"id": 8, "y": "mid"}', offset=0))
    assert isinstance(refused, Rejected) and refused.reason == "unknown_class"


# -- through the command line ----------------------------------------------------------------


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def assert_usage_error(result: Any, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error:"), result.stderr
    for needle in needles:
        assert needle in lines[-1], result.stderr


def test_task_classification_with_a_regressor_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", ["a,y", "1,2"])
    result = cli("replay", str(path), "--model", "sgd", "--task", "classification", check=False)
    assert_usage_error(result, "--task", "'sgd' is a regressor")
    result = cli("replay", str(path), "--positive-class", "yes", check=False)
    assert_usage_error(result, "--positive-class", "'sgd' is a regressor")


def test_labels_without_a_positive_class_stop_at_the_first_record(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", ["a,y", "1,spam", "2,ham"])
    state = tmp_path / "state"
    result = cli("replay", str(path), "--model", "logistic", "--state-dir", str(state), check=False)
    assert_usage_error(result, "'spam'", "--positive-class spam")
    inspected = cli("inspect", str(state), "--json", check=False)  # nothing learned, or saved
    assert inspected.returncode == 1 and "no checkpoint" in inspected.stderr


def logistic_oracle(X: np.ndarray, y: np.ndarray, lr: float) -> tuple[np.ndarray, float]:
    """The seed's update with a sigmoid: theta_j -= lr * (p - y) * x_j, theta_0 -= lr * (p - y)."""
    theta, theta0 = np.zeros(X.shape[1]), 0.0
    for xi, yi in zip(X, y, strict=True):
        z = theta0 + float(theta @ xi)
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        step = lr * (p - yi)
        theta = theta - step * xi
        theta0 -= step
    return theta, theta0


def replay_json(*args: str) -> dict[str, Any]:
    result = cli("replay", *args, "--inspect-json", "--drift-detector", "none")
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_bad_binary_labels_are_dead_letters_and_never_learned(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 2))
    spellings = {1: ["yes", "YES", "Yes"], 0: ["no", "No"]}
    lines, learned_X, learned_y = ["a,b,y"], [], []
    for i, (a, b) in enumerate(X.tolist()):
        label = int(a - b > 0)
        if i == 10:
            lines.append(f"{a!r},{b!r},maybe")  # a third class
        elif i == 20:
            lines.append(f"{a!r},{b!r},")  # unlabeled: predicted, not learned, no error
        else:
            lines.append(f"{a!r},{b!r},{spellings[label][i % len(spellings[label])]}")
            learned_X.append((a, b))
            learned_y.append(label)
    path = write(tmp_path / "s.csv", lines)
    letters = tmp_path / "dead.jsonl"
    summary = replay_json(
        str(path), "--model", "logistic", "--lr", "0.1", "--dead-letter", str(letters)
    )
    entries = [json.loads(line) for line in letters.read_text().splitlines()]
    assert [(e["reason"], e["raw"]) for e in entries] == [("third_class", lines[11] + "\n")]
    assert summary["records_learned"] == 58
    theta, _ = logistic_oracle(np.array(learned_X), np.array(learned_y, float), 0.1)
    assert summary["weights"]["a"] == pytest.approx(theta[0], abs=1e-12)
    assert summary["weights"]["b"] == pytest.approx(theta[1], abs=1e-12)
    confusion = summary["metrics"]["confusion"]
    assert sum(n for row in confusion.values() for n in row.values()) == 58
    first = {}  # each class is shown as its first spelling
    for line in lines[1:]:
        label = line.rsplit(",", 1)[1]
        first.setdefault(label.lower(), label)
    assert set(confusion) == {first["yes"], first["no"]} == {"yes", "No"}


@pytest.mark.slow
def test_multiclass_bad_labels_each_once_in_the_dead_letters(tmp_path: Path) -> None:
    rows = ["a,y", "1,red", "2,green", "3,blue", "4,", "5,pink", "6,red", "7," + "x" * 300, "8,tan"]
    path = write(tmp_path / "s.csv", rows)
    letters = tmp_path / "dead.jsonl"
    summary = replay_json(
        str(path), "--model", "GaussianNB", "--max-classes", "3", "--dead-letter", str(letters)
    )
    reasons = [json.loads(line)["reason"] for line in letters.read_text().splitlines()]
    assert reasons == ["too_many_classes", "too_long", "too_many_classes"]
    assert summary["records_learned"] == 4  # red, green, blue, red
    fixed = tmp_path / "fixed.jsonl"
    summary = replay_json(
        str(path), "--model", "GaussianNB", "--classes", "red,green,blue,pink",
        "--dead-letter", str(fixed),
    )  # fmt: skip
    reasons = [json.loads(line)["reason"] for line in fixed.read_text().splitlines()]
    assert reasons == ["too_long", "unknown_class"]
    assert summary["records_learned"] == 5
