"""provenance: the git commit of a checkout, marked dirty when tracked files changed, and
the command as typed."""

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import common
from rnnjax.train import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_git_revision_names_the_commit_and_marks_changes(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    commit = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "sub").mkdir()
    assert provenance.git_revision(tmp_path / "sub") == commit
    (tmp_path / "untracked.txt").write_text("not part of the commit")
    assert provenance.git_revision(tmp_path) == commit
    (tmp_path / "a.txt").write_text("two")
    assert provenance.git_revision(tmp_path) == commit + "-dirty"


def test_git_revision_is_none_outside_a_checkout(tmp_path):
    env_root = tmp_path / "not_a_repo"
    env_root.mkdir()
    # GIT_CEILING_DIRECTORIES would be needed if tmp_path sat inside a checkout
    if subprocess.run(["git", "rev-parse"], cwd=env_root, capture_output=True).returncode == 0:
        pytest.skip("the temporary folder lies inside a git checkout")
    assert provenance.git_revision(env_root) is None


def test_recorded_commands_can_be_pasted_into_a_shell(monkeypatch):
    argv = ["/x/experiments/linear_recurrences.py", "--copy-lengths", "", "--out", "a b"]
    monkeypatch.setattr(sys, "argv", argv)
    expected = "python -m experiments.linear_recurrences --copy-lengths '' --out 'a b'"
    assert common.command_line() == expected
    assert shlex.split(common.command_line())[3:] == argv[1:]
    assert shlex.split(provenance.environment(Path("/"))["command"]) == argv
