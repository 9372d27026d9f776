"""MetricsLog (JSONL, truncation on resume) and the learning-curve plot."""

from PIL import Image

from jaxmeta.training.metrics_log import MetricsLog, plot_learning_curve


def test_a_line_cut_short_by_a_crash_is_skipped_and_truncation_keeps_earlier_steps(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    for step in (10, 20, 30):
        log.write({"step": step, "kind": "train", "loss": 1.0 / step})
    with open(log.path, "a") as handle:
        handle.write('{"step": 40, "kind": "tr')  # killed mid-write
    assert [r["step"] for r in log.read()] == [10, 20, 30]
    log.truncate_after(20)
    assert [r["step"] for r in log.read()] == [10, 20]
    log.truncate_after(None)
    assert log.read() == []


def test_learning_curve_png_has_loss_and_accuracy_panels(tmp_path):
    records = [{"step": s, "kind": "train", "loss": 2.0 / s, "accuracy": 1 - 1.0 / s} for s in range(1, 30)]
    records += [{"step": s, "kind": "validation", "accuracy": 0.9} for s in (10, 20)]
    plot_learning_curve(records, tmp_path / "curve.png", title="test")
    with Image.open(tmp_path / "curve.png") as image:
        assert image.size[0] > 1.8 * image.size[1]  # two panels side by side
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_a_log_that_is_not_writable_reads_the_writers_records_and_changes_nothing(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer, reader = MetricsLog(path), MetricsLog(path, writable=False)
    writer.write({"step": 1, "kind": "train", "loss": 1.0})
    reader.write({"step": 2, "kind": "train", "loss": 2.0})
    reader.truncate_after(None)
    assert reader.read() == writer.read() == [{"step": 1, "kind": "train", "loss": 1.0}]
