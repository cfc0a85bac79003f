"""What `pip install .` installs (the library only) and what `import rnnjax` loads."""

import glob
import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wheel_holds_every_rnnjax_package_and_nothing_else(tmp_path):
    # Built from a copy, so the build's own folders (build/, *.egg-info) stay out of the
    # checkout; the studies, benchmarks and tests go along to show they are left out.
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "results", "*.egg-info", "build")
    for name in ("rnnjax", "experiments", "benchmarks", "tests"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "wheel")],
                   cwd=src, check=True, timeout=120, capture_output=True)
    (wheel,) = glob.glob(str(tmp_path / "wheel" / "rnnjax-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()

    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"rnnjax"}
    packages = {os.path.dirname(os.path.relpath(p, ROOT)).replace(os.sep, "/")
                for p in glob.glob(os.path.join(ROOT, "rnnjax", "**", "__init__.py"),
                                   recursive=True)}
    assert {"rnnjax", "rnnjax/cells", "rnnjax/train", "rnnjax/tasks"} <= packages
    missing = {p for p in packages if f"{p}/__init__.py" not in names}
    assert not missing, f"packages left out of the wheel: {sorted(missing)}"
    modules = {os.path.relpath(p, ROOT).replace(os.sep, "/")
               for p in glob.glob(os.path.join(ROOT, "rnnjax", "**", "*.py"), recursive=True)}
    assert modules <= set(names)


def test_import_loads_neither_flax_linen_nor_matplotlib_nor_a_tracker():
    code = """
import sys
import rnnjax as rj
import rnnjax.train
heavy = [m for m in ("flax.linen", "flax.nnx", "matplotlib", "tensorboardX", "wandb", "mlflow",
                    "scipy.signal", "scipy.io.wavfile") if m in sys.modules]
assert not heavy, heavy
assert "vision" in dir(rj) and "models" in dir(rj)
encoder = rj.vision.ImageEncoder   # loads on first use
assert "flax.linen" in sys.modules and rj.vision is sys.modules["rnnjax.vision"]
assert rj.audio.spectrogram and "scipy.signal" in sys.modules   # audio: on first use too
assert rj.crf.viterbi and rj.decode.greedy and rj.filters.kalman_filter
assert rj.seq2seq and rj.interop.from_torch and rj.linen and rj.nnx
try:
    rj.no_such_part
except AttributeError as e:
    assert "no_such_part" in str(e)
else:
    raise AssertionError("rj.no_such_part resolved")
print("ok")
"""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
