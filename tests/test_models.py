"""Several shipped models: pick one by name, and streams decode with the model that made them."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_jcd, textured

from jcdcodec.errors import WeightsError


def test_weights_by_name(two_models):
    from jcdcodec.weights import load_weights

    assert load_weights("other-test").name == "other-test"
    assert load_weights(None).name == "tiny-test"
    with pytest.raises(WeightsError, match="other-test, tiny-test"):
        load_weights("no-such-model")


def test_a_file_that_is_no_weights_says_what_it_is(tmp_path):
    """An image passed to --weights (the arguments swapped) is named as one; other bytes keep the reader's reason."""
    from PIL import Image

    from jcdcodec.weights import load_weights

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    with pytest.raises(WeightsError) as e:
        load_weights(tmp_path / "photo.png")
    assert str(e.value) == f"{tmp_path / 'photo.png'}: not a weights file: it is a PNG image"
    (tmp_path / "w.safetensors").write_bytes(b"\xff" * 300)
    with pytest.raises(WeightsError, match="not a readable safetensors weights file"):
        load_weights(tmp_path / "w.safetensors")


def test_named_model_is_checksummed(two_models):
    from jcdcodec.weights import load_weights

    f = two_models / "other.safetensors"
    f.write_bytes(f.read_bytes()[:-1] + b"\0")
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_weights("other-test")


def test_default_codec_follows_the_stream(two_models):
    from jcdcodec import Codec, Picture

    pic = Picture.from_array(textured(48, 64))
    enc = Codec("other-test", device="cpu").encode(pic, 3)
    default = Codec(device="cpu")
    assert default.weights.name == "tiny-test"
    out = default.decode(enc.data)
    assert out.picture.rgb.shape == (48, 64, 3)
    # The decoder used the stream's model: same latent as the encoder's.
    assert (out.y_hat == enc.y_hat).all()
    # Explicit weights are obeyed, so a mismatch is still an error.
    with pytest.raises(WeightsError, match="stream was made with weights other-test"):
        Codec("tiny-test", device="cpu").decode(enc.data)


def test_cli_models_lists_the_shipped_models(two_models):
    r = run_jcd("models", env={"JCD_MODELS": str(two_models)})
    assert r.returncode == 0, r.stderr
    assert "tiny-test (default)" in r.stdout
    assert "other-test" in r.stdout and "photos" in r.stdout and "benchmark" in r.stdout
    assert r.stdout.count("decodes   with PyTorch (no .synthesis.onnx file)") == 2  # the entries name none
    r = run_jcd("models", "--json", env={"JCD_MODELS": str(two_models)})
    assert json.loads(r.stdout)["default"] == "tiny-test"


def test_cli_decode_without_weights_uses_the_streams_model(two_models, tmp_path):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray((textured(40, 56) * 255).astype("uint8")).save(src)
    env = {"JCD_MODELS": str(two_models)}
    r = run_jcd("encode", str(src), "-q", "2", "--weights", "other-test", "-o", str(tmp_path / "a.jcd"), env=env)
    assert r.returncode == 0, r.stderr
    r = run_jcd("decode", str(tmp_path / "a.jcd"), "-o", str(tmp_path / "a.png"), env=env)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "a.png").size == (56, 40)


def _damage(file):
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


def test_a_batch_stops_once_at_a_default_model_that_does_not_load(two_models, tmp_path):
    """Without --weights, a damaged default model failed at every image of a batch: one identical line per file
    (and its 30 MB checked again each time); now the batch stops at the first, as a bad --weights does."""
    from PIL import Image

    for i in range(3):
        Image.fromarray((textured(24, 24, seed=i) * 255).astype("uint8")).save(tmp_path / f"p{i}.png")
    _damage(two_models / "tiny.safetensors")
    out = tmp_path / "coded"
    r = run_jcd("encode", *(str(tmp_path / f"p{i}.png") for i in range(3)), "-o", str(out),
                env={"JCD_MODELS": str(two_models)})  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 2, r.stderr
    assert lines[0].startswith(f"jcd: error: {tmp_path / 'p0.png'}: ") and "checksum mismatch" in lines[0]
    assert lines[1] == ("jcd: error: stopped: the weights above do not load, 2 of 3 files not tried (0 done, "
                        "1 failed); mend or reinstall the weights")  # fmt: skip
    assert not out.exists()  # the -o directory the run made, left empty, is gone


def test_a_batch_of_streams_stops_at_the_stream_model_that_does_not_load(two_models, tmp_path):
    """Streams that name a damaged model: the first says why, the rest are not tried; what was decoded stays,
    and --skip-existing goes on once the weights are mended."""
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray((textured(24, 32) * 255).astype("uint8")).save(src)
    env = {"JCD_MODELS": str(two_models)}
    streams = tmp_path / "streams"
    streams.mkdir()
    for name, model in (("a", "tiny-test"), ("b", "other-test"), ("c", "other-test")):
        r = run_jcd("encode", str(src), "-q", "2", "--weights", model, "-o", str(streams / f"{name}.jcd"), env=env)
        assert r.returncode == 0, r.stderr
    good = (two_models / "other.safetensors").read_bytes()
    _damage(two_models / "other.safetensors")
    out = tmp_path / "decoded"
    r = run_jcd("decode", str(streams), "-o", str(out), env=env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 2, r.stderr
    assert lines[0].startswith(f"jcd: error: {streams / 'b.jcd'}: ") and "checksum mismatch" in lines[0]
    assert lines[1].endswith("1 of 3 files not tried (1 done, 1 failed); mend or reinstall the weights, then run "
                             "it again with --skip-existing")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]
    (two_models / "other.safetensors").write_bytes(good)
    r = run_jcd("decode", str(streams), "-o", str(out), "--skip-existing", env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_the_automatic_choice_tries_a_model_that_does_not_load_once(two_models, monkeypatch):
    """The API's encoder keeps why a chosen model did not load: the next image fails at once, not after
    reading and checking the same file again."""
    from jcdcodec import Picture, encoder
    from jcdcodec.choose import AutoCodec
    from jcdcodec.errors import ModelUnavailable

    tries = []

    def broken(name, **options):
        tries.append(name)
        raise WeightsError("w.safetensors: checksum mismatch (expected 0, got 1)")

    monkeypatch.setattr(encoder, "open_encoder", broken)
    auto = AutoCodec(device="cpu")
    pic = Picture.from_array(textured(24, 24))
    for _ in range(2):
        with pytest.raises(ModelUnavailable, match="checksum mismatch"):
            auto.encode(pic, 2)
    assert tries == [None]


def test_intended_use_follows_the_noise_convention_unless_stated():
    from jcdcodec.manifest import intended_use

    assert intended_use({"train_config": {"gamma": "srgb"}}).startswith("photos")
    assert "benchmark" in intended_use({"train_config": {"gamma": "reference"}})
    assert "benchmark" in intended_use({})  # records from before --gamma existed were all reference
    assert intended_use({"purpose": "x-rays", "train_config": {"gamma": "srgb"}}) == "x-rays"


def test_intended_use_follows_the_training_noise():
    from jcdcodec.manifest import intended_use

    assert "benchmark" in intended_use({"train_config": {"gamma": "reference"}})
    assert intended_use({"train_config": {"gamma": "srgb"}}).startswith("photos")
    assert intended_use({"train_config": {"gamma": "srgb", "noise": "mix"}}).startswith("camera photos")
    assert intended_use({"purpose": "training only", "train_config": {"noise": "mix"}}) == "training only"


def test_a_stream_of_a_replaced_version_says_where_its_weights_are(two_models, tmp_path):
    """A model updated in a later jcd: its old streams name the commit that still holds their weights."""
    from jcdcodec import Codec, Picture
    from jcdcodec.manifest import sha256_file

    enc = Codec("other-test", device="cpu").encode(Picture.from_array(textured(40, 56)), 3)
    manifest = json.loads((two_models / "manifest.json").read_text())
    old = manifest["models"].pop("other-test")  # other-test is "replaced": only its record is left
    manifest["retired"] = [{"name": "other-test", "file": old["file"], "sha256": sha256_file(two_models / old["file"]),
                            "steps": 0, "commit": "0123456789ab", "replaced": "2026-01-02"}]  # fmt: skip
    (two_models / "manifest.json").write_text(json.dumps(manifest))
    (two_models / old["file"]).unlink()
    stream = tmp_path / "old.jcd"
    stream.write_bytes(enc.data)
    env = {"JCD_MODELS": str(two_models)}
    r = run_jcd("decode", str(stream), "-o", str(tmp_path / "old.png"), env=env)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "other-test weights" in r.stderr and "(replaced 2026-01-02)" in r.stderr
    assert "git show 0123456789ab:models/other.safetensors > other-test-" in r.stderr and "--weights" in r.stderr
    r = run_jcd("info", str(stream), "--json", env=env)
    assert json.loads(r.stdout)["weights_name"] == "other-test, replaced 2026-01-02"


def test_export_over_a_shipped_model_records_the_version_it_replaces(tmp_path, weights_file, other_weights_file):
    import subprocess

    from jcdcodec.cli.workbench import _list_in_manifest
    from jcdcodec.manifest import read_manifest, sha256_file

    models = tmp_path / "models"
    models.mkdir()
    target = models / "m.safetensors"
    shutil.copy(weights_file, target)
    _list_in_manifest(target, sha256_file(target), {"name": "m", "steps": "10", "config": {"N": 16}}, True)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "ship m"], check=True)
    first = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout[:12]
    shutil.copy(other_weights_file, target)  # the next export replaces it
    _list_in_manifest(target, sha256_file(target), {"name": "m", "steps": "20"}, make_default=True)
    manifest = read_manifest(models)
    assert manifest["models"]["m"]["sha256"] == sha256_file(other_weights_file)
    (retired,) = manifest["retired"]
    assert retired["sha256"] == sha256_file(weights_file) and retired["commit"] == first and retired["steps"] == "10"
    assert retired["config"]["N"] == 16
    _list_in_manifest(target, sha256_file(target), {"name": "m", "steps": "20"}, make_default=True)
    assert len(read_manifest(models)["retired"]) == 1  # the same weights again retire nothing


@pytest.mark.parametrize("found", [
    ('{"name": "my web app", "icons": []}', "not a jcd model manifest (no \"models\"; it holds icons, name)"),
    ("[1, 2]", "not a jcd model manifest (a JSON list, not an object)"),
    ('{"models": {"m": 3}}', "damaged model manifest"),
    ('{"models": {}, "default": 7}', "damaged model manifest"),
    ("\xff\xfe{", "manifest is not valid JSON"),
])  # fmt: skip
def test_export_never_adds_to_a_manifest_that_is_not_jcds(tmp_path, weights_file, found):
    """Exporting beside another program's manifest.json added "models" to it (exit 0); beside a JSON list, it
    wrote the weights, then failed with an internal error. Now one line, and nothing written or changed."""
    text, said = found
    (tmp_path / "manifest.json").write_bytes(text.encode("latin-1"))
    out = tmp_path / "w.safetensors"
    r = run_jcd("export", str(weights_file), "-o", str(out), "--no-synthesis")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"{tmp_path / 'manifest.json'}: {said}" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    assert (tmp_path / "manifest.json").read_bytes() == text.encode("latin-1")
    # The codec reading a damaged manifest of shipped models says so in one line too (it raised AttributeError).
    r = run_jcd("models", env={"JCD_MODELS": str(tmp_path)})
    assert r.returncode == 1 and said in r.stderr and "internal error" not in r.stderr, r.stderr


def _commit_all(root) -> str:
    """Commit everything under ``root`` (a new git repository); the commit's short hash."""
    import subprocess

    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "ship"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout[:12]


def test_jcd_retire_drops_a_model_and_its_streams_name_the_commit_holding_it(two_models, tmp_path):
    """`jcd retire NAME`: the entry and its file go, the record stays, and a stream the model made says in
    one line (in another process) which commit holds its weights."""
    from jcdcodec import Codec, Picture
    from jcdcodec.manifest import read_manifest, sha256_file

    enc = Codec("other-test", device="cpu").encode(Picture.from_array(textured(40, 56)), 3)
    stream = tmp_path / "old.jcd"
    stream.write_bytes(enc.data)
    sha = sha256_file(two_models / "other.safetensors")
    companion = two_models / "other.analysis.onnx"  # a listed companion goes with its model
    companion.write_bytes(b"graph")
    manifest = json.loads((two_models / "manifest.json").read_text())
    manifest["models"]["other-test"]["analysis"] = {"file": companion.name, "sha256": sha256_file(companion)}
    (two_models / "manifest.json").write_text(json.dumps(manifest))
    head = _commit_all(tmp_path)
    env = {"JCD_MODELS": str(two_models)}
    r = run_jcd("retire", "other-test", env=env)
    assert r.returncode == 0, r.stderr
    assert f"commit {head}" in r.stdout + r.stderr
    manifest = read_manifest(two_models)
    assert set(manifest["models"]) == {"tiny-test"} and manifest["default"] == "tiny-test"
    (record,) = manifest["retired"]
    assert record["name"] == "other-test" and record["sha256"] == sha and record["commit"] == head
    assert not (two_models / "other.safetensors").exists() and (two_models / "tiny.safetensors").exists()
    assert not companion.exists()
    r = run_jcd("decode", str(stream), "-o", str(tmp_path / "old.png"), env=env)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"git show {head}:models/other.safetensors > other-test-{sha[:8]}.safetensors" in r.stderr
    assert not (tmp_path / "old.png").exists()


def test_jcd_retire_refuses_what_would_strand_streams_and_changes_nothing(two_models):
    """The default, an unlisted name, and weights no commit holds (without --force) are refused in one line,
    with the manifest and files as they were."""
    before = (two_models / "manifest.json").read_bytes()
    env = {"JCD_MODELS": str(two_models)}
    for args, says in ((("tiny-test",), "is the default model"), (("no-such",), "not a model listed"),
                       (("other-test",), "in none of the last 50 commits")):  # fmt: skip
        r = run_jcd("retire", *args, env=env)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
        assert (two_models / "manifest.json").read_bytes() == before
        assert (two_models / "other.safetensors").exists() and (two_models / "tiny.safetensors").exists()
    r = run_jcd("retire", "other-test", "--force", env=env)
    assert r.returncode == 0 and "no commit" in r.stdout + r.stderr
    from jcdcodec.manifest import read_manifest

    (record,) = read_manifest(two_models)["retired"]
    assert record["commit"] is None and not (two_models / "other.safetensors").exists()


def test_retire_refuses_a_model_that_earlier_versions_are_stored_against(two_models):
    """A delta rebuilds its version from the current file: retiring that file would strand their streams."""
    from jcdcodec.manifest import read_manifest
    from jcdcodec.retired import retire_model

    manifest = read_manifest(two_models)
    manifest["retired"] = [{"name": "other-test", "file": "other.safetensors", "sha256": "ab" * 32, "commit": None,
                            "delta": {"file": "retired/x.delta.safetensors", "sha256": "cd" * 32,
                                      "base_sha256": manifest["models"]["other-test"]["sha256"]}}]  # fmt: skip
    (two_models / "manifest.json").write_text(json.dumps(manifest))
    before = (two_models / "manifest.json").read_bytes()
    with pytest.raises(WeightsError, match="stored as deltas against it"):
        retire_model("other-test", force=True)
    assert (two_models / "manifest.json").read_bytes() == before and (two_models / "other.safetensors").exists()


def test_every_retired_version_is_in_the_repository_history():
    """The shipped manifest's retired records point at commits that hold exactly those weights."""
    import hashlib
    import subprocess

    from conftest import REPO

    from jcdcodec.manifest import read_manifest

    retired = read_manifest(REPO / "models").get("retired", [])
    from jcdcodec.retired import rebuild

    for e in retired:  # the ones shipped as deltas rebuild byte for byte, git or not
        if e.get("delta"):
            assert hashlib.sha256(rebuild(e, REPO / "models")).hexdigest() == e["sha256"]
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the history is not here")
    assert retired, "the shipped manifest lists the earlier versions of its models"
    shipped = {e["sha256"] for e in read_manifest(REPO / "models")["models"].values()}
    for e in retired:
        assert e["sha256"] not in shipped
        where = f"{e['commit']}:models/{e['file']}"
        blob = subprocess.run(["git", "-C", str(REPO), "show", where], capture_output=True)
        if blob.returncode != 0 and (b"bad object" in blob.stderr or b"invalid object" in blob.stderr):
            pytest.skip("a shallow clone: older commits are not here")
        assert blob.returncode == 0, blob.stderr.decode()[-300:]
        assert hashlib.sha256(blob.stdout).hexdigest() == e["sha256"], e


@pytest.fixture()
def recalibrated(tmp_path, weights_file, monkeypatch):
    """A models folder whose model 'm' was replaced by the same network with other gains (a calibration)."""
    import torch

    from jcdcodec import Codec, Picture
    from jcdcodec.cli.workbench import _list_in_manifest
    from jcdcodec.manifest import sha256_file
    from jcdcodec.weights import load_weights, save_weights
    from jcdcodec.weightsfile import synthesis_path_for

    models = tmp_path / "models"
    models.mkdir()
    target = models / "m.safetensors"
    shutil.copy(weights_file, target)
    if synthesis_path_for(weights_file).is_file():
        shutil.copy(synthesis_path_for(weights_file), synthesis_path_for(target))
    _list_in_manifest(target, sha256_file(target), {"name": "m", "config": {"N": 16}}, True)
    monkeypatch.setenv("JCD_MODELS", str(models))
    old = Codec("m", device="cpu").encode(Picture.from_array(textured(48, 64, seed=6)), 2.5)
    lw = load_weights(target)
    with torch.no_grad():
        lw.model.log_gain.add_(0.05)
        lw.model.log_inv_gain.sub_(0.05)
    staged = tmp_path / "staged" / "m.safetensors"
    staged.parent.mkdir()
    save_weights(lw.model, staged, {"name": "m", "trained": "false"})
    previous = target.read_bytes()
    shutil.copy(staged, target)
    if synthesis_path_for(staged).is_file():
        shutil.copy(synthesis_path_for(staged), synthesis_path_for(target))
    _list_in_manifest(target, sha256_file(target), {"name": "m", "config": {"N": 16}}, True, previous)
    return models, old


def test_a_recalibrated_model_ships_its_earlier_version_as_a_small_delta(recalibrated, tmp_path):
    from jcdcodec.manifest import read_manifest, sha256_file
    from jcdcodec.retired import rebuild

    models, old = recalibrated
    manifest = read_manifest(models)
    (record,) = manifest["retired"]
    delta = models / record["delta"]["file"]
    from safetensors import safe_open

    with safe_open(str(delta), "numpy") as f:
        assert set(f.keys()) == {"log_gain", "log_inv_gain"}  # the gains, not the network
    assert delta.stat().st_size < 64_000  # (mostly the earlier version's own header)
    assert record["delta"]["base_sha256"] == manifest["models"]["m"]["sha256"] == sha256_file(models / "m.safetensors")
    assert record["sha256"].startswith(old.header.fingerprint.hex())
    import hashlib

    assert hashlib.sha256(rebuild(record, models)).hexdigest() == record["sha256"]


@pytest.mark.parametrize("engine", ["auto", "torch"])
def test_streams_of_the_earlier_version_still_decode_to_the_same_latent(recalibrated, engine, tmp_path):
    import numpy as np

    from jcdcodec import open_decoder

    models, old = recalibrated
    decoder = open_decoder(engine=engine, device="cpu")
    dec = decoder.decode(old.data)
    assert np.array_equal(dec.y_hat, old.y_hat)
    (rebuilt,) = decoder._others.values()
    if engine == "auto":  # the earlier version runs its base's synthesis file: no PyTorch needed
        assert rebuilt.engine.startswith("onnx")
    stream = tmp_path / "old.jcd"
    stream.write_bytes(old.data)
    env = {"JCD_MODELS": str(models)}
    r = run_jcd("decode", str(stream), "-o", str(tmp_path / "old.png"), "--engine", engine, env=env)
    assert r.returncode == 0, r.stderr
    r = run_jcd("decode", str(stream), "-o", str(tmp_path / "old2.png"), "--weights", "m", env=env)
    assert r.returncode == 1 and "rebuilds: decode it without --weights" in r.stderr


def test_a_damaged_delta_is_one_line_error_not_a_wrong_picture(recalibrated, tmp_path):
    from jcdcodec.manifest import read_manifest

    models, old = recalibrated
    delta = models / read_manifest(models)["retired"][0]["delta"]["file"]
    data = bytearray(delta.read_bytes())
    data[-1] ^= 1
    delta.write_bytes(bytes(data))
    stream = tmp_path / "old.jcd"
    stream.write_bytes(old.data)
    r = run_jcd("decode", str(stream), "-o", str(tmp_path / "old.png"), env={"JCD_MODELS": str(models)})
    assert r.returncode == 1 and "checksum mismatch" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_an_export_is_byte_reproducible_across_processes(tmp_path, weights_file):
    """The same weights exported by three processes give one sha256 (safetensors alone orders the metadata
    keys by a per-process random hash, so each export had another checksum and every eval cache missed)."""
    import subprocess
    import sys

    from jcdcodec.manifest import sha256_file
    from jcdcodec.weightsfile import read_metadata

    script = (
        "import sys; from jcdcodec.weights import load_weights, save_weights\n"
        "lw = load_weights(sys.argv[1])\n"
        "meta = {k: str(i) for i, k in enumerate('zyxwvutsrq')} | {'name': 'm', 'trained': 'false'}\n"
        "save_weights(lw.model, sys.argv[2], meta, synthesis=False)\n"
    )
    outs = [tmp_path / f"e{i}.safetensors" for i in range(3)]
    for out in outs:
        subprocess.run([sys.executable, "-c", script, str(weights_file), str(out)], check=True)
    assert len({sha256_file(o) for o in outs}) == 1
    raw = outs[0].read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    keys = list(header["__metadata__"])
    assert keys == sorted(keys) and "jcd_config" in keys
    assert n % 8 == 0
    assert read_metadata(outs[0])["z"] == "0"  # and the file still reads as weights
