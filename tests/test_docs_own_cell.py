"""docs/your_own_cell.md runs as written: its Python blocks, in order, in one namespace."""

import re
from pathlib import Path

PAGE = Path(__file__).parents[1] / "docs" / "your_own_cell.md"


def test_your_own_cell_page_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace = {"__name__": "your_own_cell"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{PAGE.name} block {i + 1}", "exec"), namespace)
    printed = capsys.readouterr().out
    # what the page promises to print
    assert "Forgetful.step must return (carry, y), a pair; it returned only the carry" in printed
    assert "| mgu | 40 |" in printed and "| gru | 40 |" in printed
    assert namespace["grid"] == [{"seed": s, "learning_rate": 1e-2} for s in range(3)]
