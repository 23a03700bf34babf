"""history/store.py adapter_sha: every kind of ft arm's weights get a sha (a full or hft model, an ft-multi folder)."""

from __future__ import annotations

from corpora.files import file_sha
from history.store import adapter_sha


def test_adapter_sha_of_each_arm_kind(tmp_path):
    peft = tmp_path / "peft"
    peft.mkdir()
    (peft / "adapter_model.safetensors").write_bytes(b"lora")
    assert adapter_sha(str(peft)) == file_sha(peft / "adapter_model.safetensors")  # as older runs recorded

    full = tmp_path / "full"
    full.mkdir()
    (full / "model.safetensors").write_bytes(b"weights")
    a = adapter_sha(str(full))
    assert a and len(a) == 16
    (full / "model.safetensors").write_bytes(b"weights, trained further")
    assert adapter_sha(str(full)) != a

    multi = tmp_path / "multi"
    for k in range(2):
        (multi / f"cluster-{k}").mkdir(parents=True)
        (multi / f"cluster-{k}" / "adapter_model.safetensors").write_bytes(f"lora {k}".encode())
    m = adapter_sha(str(multi))
    (multi / "cluster-1" / "adapter_model.safetensors").write_bytes(b"other")
    assert m and adapter_sha(str(multi)) != m

    assert adapter_sha(None) is None and adapter_sha(str(tmp_path / "none")) is None
    (tmp_path / "empty").mkdir()
    assert adapter_sha(str(tmp_path / "empty")) is None
