

def test_format_study_rows():
    from f8hw import train
    from f8hw.format_study import format_study

    study = format_study("cnn", train.Recipe(fp32_epochs=1, qat_epochs=0, calibration_batches=1), ("int8", "e4m3"))
    assert [r.formats for r in study.rows] == ["int8", "e4m3"]
    assert all(r.ptq == r.qat and 0 <= r.qat <= 1 for r in study.rows)  # no QAT epoch: QAT = PTQ
    assert study.rows[1].layer_formats["head.fc"] == ("e4m3", "e4m3") if "head.fc" in study.rows[1].layer_formats \
        else set(study.rows[1].layer_formats.values()) <= {("int8", "e4m3"), ("e4m3", "e4m3")}
    assert study.markdown().splitlines()[3].startswith("| int8 |")
