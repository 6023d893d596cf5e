"""lab/ is generated from solutions/: it must be up to date and hold stubs, not solutions."""
import json
import subprocess
import sys

from conftest import REPO, tool
from maskgit_kit.autograder.todos import load as load_todos
from maskgit_kit.labtree import STUDENT_FILES


def test_lab_is_up_to_date():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "make_lab.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"lab/ is stale; run `python tools/make_lab.py`:\n{proc.stdout}{proc.stderr}"


def test_lab_has_a_stub_per_todo_and_no_solution_code():
    files = {
        "TODO1": REPO / "lab" / "models" / "Transformer" / "modules" / "layer.py",
        "TODO2": REPO / "lab" / "models" / "VQGAN_Transformer.py",
        "TODO3": REPO / "lab" / "inpainting.py",
    }
    for todo, path in files.items():
        text = path.read_text()
        assert f'raise NotImplementedError("{todo}:' in text, path
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    layer = files["TODO1"].read_text()
    body = layer.split("def forward")[1]
    assert "self.q_proj(x)" not in body and ".softmax(" not in body  # the attention body is gone
    train = (REPO / "lab" / "training_transformer.py").read_text()
    assert 'raise NotImplementedError("TODO2:' in train and "clip_grad_norm_" not in train
    lab_cfg = (REPO / "lab" / "config" / "MaskGit.yml").read_text()
    assert "transformer_checkpoints/best.pt" in lab_cfg and "checkpoints/transformer.pt" not in lab_cfg


def test_one_description_per_todo_reaches_the_lab_the_guide_and_the_grader():
    """The solution markers are the one source: the grader's TODO list (todos.json) holds exactly their blocks, each
    in a student file, and the lab's stub, the students' TODO table and the grader's tables say the same."""
    _, blocks, _ = tool("make_lab").generate(REPO / "solutions")
    cat = load_todos()
    parts = {(tid, p.file, p.function, p.name, p.description) for tid, t in cat.todos.items() for p in t.parts}
    assert parts == {(b.todo, b.file, b.function, b.name, b.description) for b in blocks}
    assert {p[1] for p in parts} == set(STUDENT_FILES)  # every student file has a TODO, and only they do
    assert [t.title for t in cat.todos.values()] == [b.title for b in sorted(blocks, key=lambda b: b.todo) if b.title]
    students = (REPO / "docs" / "students.md").read_text()
    table = students.split("<!-- BEGIN GENERATED: todo-table -->")[1].split("<!-- END GENERATED: todo-table -->")[0]
    readme = (REPO / "grader" / "README.md").read_text()
    checks = readme.split("<!-- BEGIN GENERATED: checks -->")[1].split("<!-- END GENERATED: checks -->")[0]
    for todo in cat.todos.values():
        assert f"{todo.id} ({todo.title})" in table and f"**{todo.id}, {todo.title} (" in checks
        for p in todo.parts:
            text = json.dumps(f"{todo.id}: {p.name}: {p.description}", ensure_ascii=False)  # as make_lab writes it
            stub = f"raise NotImplementedError({text})"
            assert stub in (REPO / "lab" / p.file).read_text(), (p.file, stub)
            assert f"| `lab/{p.file}` | `{p.function}` |" in table
            assert p.description.replace("*", "\\*").replace("|", "\\|") in table  # as Markdown shows it
    for c in cat.checks.values():
        assert f"| `{c.name}` | " in checks and c.where.split(" and ")[0] in cat.todos[c.todo].functions
