"""Every Python snippet in the README runs on its own when pasted: each one imports what
it uses (checked for all in the default tier), and the slow tier executes each (but the
minutes-long training one) in a fresh namespace."""

import ast
import builtins
import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# Minutes of data generation and training: checked for self-containment, not executed.
EXPENSIVE = ('load_or_generate("ethanol"',)


def undefined_names(code: str) -> set[str]:
    """Names a snippet reads but neither imports, assigns, defines nor gets from builtins."""
    tree = ast.parse(code)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.Lambda):
            if isinstance(node, ast.FunctionDef):
                bound.add(node.name)
            bound |= {a.arg for a in node.args.args + node.args.kwonlyargs}
    reads = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return reads - bound


def test_readme_has_snippets_and_the_check_sees_a_missing_import():
    assert len(SNIPPETS) >= 4
    assert undefined_names("g = jax.grad(f)(jnp.ones(3))") == {"jax", "jnp", "f"}
    assert undefined_names("import jax\nf = lambda x: x\ng = jax.grad(f)(1.0)") == set()


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_imports_what_it_uses(index):
    code = SNIPPETS[index]
    compile(code, f"README snippet {index}", "exec")
    assert undefined_names(code) == set(), f"snippet {index} needs names it does not import"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_runs_on_its_own(index):
    code = SNIPPETS[index]
    if any(marker in code for marker in EXPENSIVE):
        pytest.skip("minutes of data generation and training (the notebooks run a small one)")
    exec(compile(code, f"README snippet {index}", "exec"), {"__name__": "__main__"})
