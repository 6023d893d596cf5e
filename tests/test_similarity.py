"""tools/similarity.py: TODO bodies compared with copydetect, the scaffold excluded; a ranked HTML/CSV/JSON report.

The submissions are built from the lab's own stubs: each hand-written TODO body below replaces the stub's
``raise NotImplementedError("TODO...")``. ``carol`` and ``dave`` are honest and written differently; ``mallory``
is carol's code with every name changed and independent lines reordered; ``ref`` is the reference
(``write_submission``); ``stub_tree`` and ``stub_flat`` are the untouched lab stubs.
"""
from __future__ import annotations

import ast
import csv
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from grader_mutants import STUDENT_FILES, write_submission

from conftest import REPO, tool
from maskgit_kit import labtree

similarity = tool("similarity")
LAB = REPO / "lab"
LAYER, MODEL, TRAIN, INPAINT = STUDENT_FILES

CAROL = {
    (LAYER, "MultiHeadAttention.forward"): """
        batch, tokens, width = x.shape
        heads = self.num_heads
        head_dim = width // heads

        def split(t):
            return t.reshape(batch, tokens, heads, head_dim).permute(0, 2, 1, 3)

        query = split(self.q_proj(x))
        key = split(self.k_proj(x))
        value = split(self.v_proj(x))
        weights = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(head_dim)
        weights = self.attn_drop(torch.softmax(weights, dim=3))
        context = torch.matmul(weights, value).permute(0, 2, 1, 3).contiguous()
        return self.out_proj(context.reshape(batch, tokens, width))
    """,
    (MODEL, "MaskGit.gamma_func"): """
        n = self.num_image_tokens
        if mode == "cosine":
            fn = lambda r: torch.cos(math.pi * r / 2)
        elif mode == "linear":
            fn = lambda r: 1.0 - r
        elif mode == "square":
            fn = lambda r: 1.0 - r * r
        elif mode == "cubic":
            fn = lambda r: 1.0 - r * r * r
        elif mode == "sqrt":
            fn = lambda r: 1.0 - torch.sqrt(r)
        elif mode == "log":
            fn = lambda r: -torch.log2(r) / math.log2(n)
        elif mode == "exp":
            fn = lambda r: 1.0 - 2.0 ** (-math.log2(n) * (1.0 - r))
        else:
            raise ValueError(f"mode must be one of {MASK_FUNCS}, got {mode}")

        def gamma(r):
            r = torch.as_tensor(r, dtype=torch.float32)
            return torch.clamp(fn(r), min=0.0, max=1.0)
        return gamma
    """,
    (MODEL, "MaskGit.mask_tokens"): """
        batch, n = z_indices.shape
        if ratio is None:
            ratio = torch.rand(batch, generator=generator)
        ratio = torch.as_tensor(ratio, dtype=torch.float32)
        if ratio.dim() == 0:
            ratio = ratio.repeat(batch)
        count = torch.ceil(self.gamma(ratio) * n).long()
        count = torch.clamp(count, 1, n)
        noise = torch.rand(batch, n, generator=generator)
        order = torch.argsort(noise, dim=-1)
        positions = torch.arange(n).unsqueeze(0).expand(batch, n)
        mask = torch.zeros(batch, n, dtype=torch.bool)
        mask.scatter_(1, order, positions < count.unsqueeze(1))
        mask = mask.to(z_indices.device)
        masked = torch.where(mask, torch.full_like(z_indices, self.mask_token_id), z_indices)
        return masked, mask
    """,
    (TRAIN, "TrainTransformer.train_one_epoch"): """
        self.model.train()
        self.optim.zero_grad()
        steps = self.args.accum_grad
        losses = []
        progress = tqdm(train_loader, desc=f"train {epoch}")
        for n, data in enumerate(progress, start=1):
            data = data.to(self.device)
            with self.autocast():
                logits, target = self.model(data)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                                       ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
            (loss / steps).backward()
            losses.append(loss.item())
            if n % steps == 0:
                self.optim.step()
                self.scheduler.step()
                self.optim.zero_grad()
            progress.set_postfix(loss=sum(losses) / len(losses))
        return sum(losses) / max(len(losses), 1)
    """,
    (INPAINT, "iterative_decoding"): """
        n_steps = total_iter
        if sweet_spot is not None:
            n_steps = min(total_iter, sweet_spot)
        start = mask.sum(dim=-1)
        tokens, still = z_indices, mask
        trace = []
        step = 0
        while step < n_steps:
            ratio = (step + 1) / total_iter
            tokens, still = model.inpainting_step(tokens, still, start, ratio, generators=generators,
                                                  **step_kwargs)
            trace.append((tokens, still))
            step += 1
        return tokens, trace
    """,
}

# carol's code, every name changed, independent lines swapped, comments added
MALLORY = {
    (LAYER, "MultiHeadAttention.forward"): """
        bs, seq, dim = x.shape
        nh = self.num_heads
        hd = dim // nh

        def to_heads(y):  # (bs, seq, dim) -> (bs, nh, seq, hd)
            return y.reshape(bs, seq, nh, hd).permute(0, 2, 1, 3)

        v_ = to_heads(self.v_proj(x))
        k_ = to_heads(self.k_proj(x))
        q_ = to_heads(self.q_proj(x))
        att = torch.matmul(q_, k_.transpose(2, 3)) / math.sqrt(hd)
        att = self.attn_drop(torch.softmax(att, dim=3))
        merged = torch.matmul(att, v_).permute(0, 2, 1, 3).contiguous()
        return self.out_proj(merged.reshape(bs, seq, dim))
    """,
    (MODEL, "MaskGit.gamma_func"): """
        num = self.num_image_tokens
        if mode == "linear":
            schedule = lambda t: 1.0 - t
        elif mode == "cosine":
            schedule = lambda t: torch.cos(math.pi * t / 2)
        elif mode == "square":
            schedule = lambda t: 1.0 - t * t
        elif mode == "sqrt":
            schedule = lambda t: 1.0 - torch.sqrt(t)
        elif mode == "cubic":
            schedule = lambda t: 1.0 - t * t * t
        elif mode == "exp":
            schedule = lambda t: 1.0 - 2.0 ** (-math.log2(num) * (1.0 - t))
        elif mode == "log":
            schedule = lambda t: -torch.log2(t) / math.log2(num)
        else:
            raise ValueError(f"unknown mode {mode}, use one of {MASK_FUNCS}")

        def g(t):
            t = torch.as_tensor(t, dtype=torch.float32)
            return torch.clamp(schedule(t), min=0.0, max=1.0)
        return g
    """,
    (MODEL, "MaskGit.mask_tokens"): """
        bsz, length = z_indices.shape
        if ratio is None:
            ratio = torch.rand(bsz, generator=generator)
        ratio = torch.as_tensor(ratio, dtype=torch.float32)
        if ratio.dim() == 0:
            ratio = ratio.repeat(bsz)
        k = torch.ceil(self.gamma(ratio) * length).long()
        k = torch.clamp(k, 1, length)
        rnd = torch.rand(bsz, length, generator=generator)
        idx = torch.arange(length).unsqueeze(0).expand(bsz, length)
        perm = torch.argsort(rnd, dim=-1)
        m = torch.zeros(bsz, length, dtype=torch.bool)
        m.scatter_(1, perm, idx < k.unsqueeze(1))
        m = m.to(z_indices.device)
        out = torch.where(m, torch.full_like(z_indices, self.mask_token_id), z_indices)
        return out, m
    """,
    (TRAIN, "TrainTransformer.train_one_epoch"): """
        self.model.train()
        self.optim.zero_grad()
        history = []
        accum = self.args.accum_grad
        bar = tqdm(train_loader, desc=f"train {epoch}")
        for it, batch in enumerate(bar, start=1):
            batch = batch.to(self.device)
            with self.autocast():
                out, tgt = self.model(batch)
                l = F.cross_entropy(out.float().reshape(-1, out.shape[-1]), tgt.reshape(-1),
                                    ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
            (l / accum).backward()
            history.append(l.item())
            if it % accum == 0:
                self.optim.step()
                self.scheduler.step()
                self.optim.zero_grad()
            bar.set_postfix(loss=sum(history) / len(history))
        return sum(history) / max(len(history), 1)
    """,
    (INPAINT, "iterative_decoding"): """
        T = total_iter
        if sweet_spot is not None:
            T = min(total_iter, sweet_spot)
        n0 = mask.sum(dim=-1)
        hist = []
        z, m = z_indices, mask
        i = 0
        while i < T:
            r = (i + 1) / total_iter
            z, m = model.inpainting_step(z, m, n0, r, generators=generators,
                                         **step_kwargs)
            hist.append((z, m))
            i += 1
        return z, hist
    """,
}

DAVE = {
    (LAYER, "MultiHeadAttention.forward"): """
        outputs = []
        for head in range(self.num_heads):
            part = slice(head * self.d_k, (head + 1) * self.d_k)
            qh, kh, vh = self.q_proj(x)[..., part], self.k_proj(x)[..., part], self.v_proj(x)[..., part]
            att = torch.einsum("bqd,bkd->bqk", qh, kh) * self.d_k ** -0.5
            outputs.append(torch.einsum("bqk,bkd->bqd", self.attn_drop(att.softmax(-1)), vh))
        return self.out_proj(torch.cat(outputs, dim=-1))
    """,
    (MODEL, "MaskGit.gamma_func"): """
        if mode not in MASK_FUNCS:
            raise ValueError("unknown mode %s (valid: %s)" % (mode, ", ".join(MASK_FUNCS)))
        log_n = math.log(self.num_image_tokens, 2)

        def gamma(r):
            r = torch.as_tensor(r).float()
            match mode:
                case "cosine":
                    out = (r * (math.pi / 2)).cos()
                case "linear":
                    out = 1 - r
                case "square":
                    out = 1 - r.pow(2)
                case "cubic":
                    out = 1 - r.pow(3)
                case "sqrt":
                    out = 1 - r.pow(0.5)
                case "log":
                    out = r.log2().neg().div(log_n)
                case _:
                    out = 1 - torch.pow(2.0, -log_n * (1 - r))
            return out.clamp(0, 1)
        return gamma
    """,
    (MODEL, "MaskGit.mask_tokens"): """
        size, length = z_indices.size(0), z_indices.size(1)
        if ratio is None:
            ratios = torch.rand(size, generator=generator)
        else:
            ratios = torch.zeros(size) + torch.as_tensor(ratio, dtype=torch.float32)
        rows = []
        for row in range(size):
            how_many = max(1, min(length, math.ceil(float(self.gamma(ratios[row])) * length)))
            chosen = torch.randperm(length, generator=generator)[:how_many]
            row_mask = torch.zeros(length, dtype=torch.bool)
            row_mask[chosen] = True
            rows.append(row_mask)
        mask = torch.stack(rows).to(z_indices.device)
        hidden = z_indices.clone()
        hidden[mask] = self.mask_token_id
        return hidden, mask
    """,
    (TRAIN, "TrainTransformer.train_one_epoch"): """
        self.model.train(True)
        accum = int(self.args.accum_grad)
        running, seen = 0.0, 0
        self.optim.zero_grad(set_to_none=True)
        with tqdm(total=len(train_loader)) as pbar:
            for idx, imgs in enumerate(train_loader):
                with self.autocast():
                    out, tgt = self.model(imgs.to(self.device))
                    step_loss = nn.functional.cross_entropy(out.float().permute(0, 2, 1), tgt,
                                                            ignore_index=IGNORE_INDEX,
                                                            label_smoothing=self.label_smoothing)
                step_loss.div(accum).backward()
                running += float(step_loss)
                seen += 1
                if (idx + 1) % accum == 0:
                    self.optim.step(); self.scheduler.step(); self.optim.zero_grad(set_to_none=True)
                pbar.update(1)
                pbar.set_description(f"loss {running / seen:.3f}")
        return running / seen if seen else 0.0
    """,
    (INPAINT, "iterative_decoding"): """
        history = []
        n0 = mask.long().sum(1)
        z, m = z_indices, mask
        for t in range(total_iter):
            if sweet_spot is not None and t >= sweet_spot:
                break
            z, m = model.inpainting_step(z, m, n0, ratio=(t + 1) / total_iter, generators=generators, **step_kwargs)
            history += [(z, m)]
        return z, history
    """,
}


def _functions(tree):
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef):
                found[prefix + child.name] = child
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
    visit(tree, "")
    return found


def lab_file_with(rel: str, bodies: dict) -> str:
    """The lab's stub file ``rel`` with each given TODO body in place of its ``raise NotImplementedError``."""
    text = (LAB / rel).read_text()
    lines = text.split("\n")
    functions = _functions(ast.parse(text))
    edits = []
    for (file, name), body in bodies.items():
        if file != rel:
            continue
        raise_stmt = next(s for s in functions[name].body if isinstance(s, ast.Raise))
        indent = " " * raise_stmt.col_offset
        edits.append((raise_stmt.lineno, raise_stmt.end_lineno, textwrap.indent(textwrap.dedent(body).strip(), indent)))
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1:end] = new.split("\n")
    return "\n".join(lines)


def write_tree(dest: Path, bodies: dict) -> Path:
    for rel in STUDENT_FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(lab_file_with(rel, bodies))
    return dest


def write_flat(dest: Path, bodies: dict) -> Path:
    """The four files in one folder (``hw3/``), ``layer.py`` named as in the course handout: ``layers.py``."""
    (dest / "hw3").mkdir(parents=True)
    for rel in STUDENT_FILES:
        name = "layers.py" if rel == LAYER else Path(rel).name
        (dest / "hw3" / name).write_text(lab_file_with(rel, bodies))
    return dest


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("similarity")
    subs = root / "subs"
    write_tree(subs / "carol", CAROL)
    write_flat(subs / "mallory", MALLORY)
    write_tree(subs / "dave", DAVE)
    write_submission(subs / "ref")
    shutil.copytree(LAB, subs / "stub_tree", ignore=shutil.ignore_patterns("__pycache__"))
    write_flat(subs / "stub_flat", {})
    out = root / "report"
    assert similarity.main([str(subs), "--out", str(out), "--base", str(LAB)]) == 0
    data = json.loads((out / "pairs.json").read_text())
    pairs = {frozenset((p["submission_a"], p["submission_b"])): p for p in data["pairs"]}
    return {"root": root, "subs": subs, "out": out, "data": data, "pairs": pairs}


def test_todo_functions_follow_the_lab_stubs(report):
    functions = report["data"]["functions"]
    assert f"{LAYER}::MultiHeadAttention.forward" in functions
    assert f"{INPAINT}::iterative_decoding" in functions
    assert f"{MODEL}::MaskGit.inpainting_step" in functions
    stubs = sum((LAB / rel).read_text().count('raise NotImplementedError("TODO') for rel in labtree.STUDENT_FILES)
    # every stub of the lab, nothing else: the brief's 10 of TODO1-3, TODO4's 3 and TODO5's 3 (the extensions)
    assert len(functions) == stubs == 16
    found = report["data"]["submissions_found"]
    assert found["mallory"]["files"][LAYER] == "hw3/layers.py"  # the course's name, anywhere in the folder
    assert found["carol"]["files"][LAYER] == LAYER


def test_copied_pair_is_flagged_honest_pairs_are_not(report):
    pairs = report["pairs"]
    copied = pairs[frozenset(("carol", "mallory"))]
    assert copied["flagged"] and copied["similarity"] >= 0.8, copied
    assert copied["rank"] == 1
    for rel in (LAYER, MODEL, TRAIN, INPAINT):
        assert copied["files"][rel] >= 0.5, (rel, copied["files"])
    assert copied["files"][TRAIN] is not None
    for a, b in (("carol", "dave"), ("carol", "ref"), ("dave", "ref"), ("mallory", "dave"), ("mallory", "ref")):
        honest = pairs[frozenset((a, b))]
        assert not honest["flagged"] and honest["similarity"] < 0.35, honest
    flagged = [p for p in report["data"]["pairs"] if p["flagged"]]
    assert [frozenset((p["submission_a"], p["submission_b"])) for p in flagged] == [frozenset(("carol", "mallory"))]


class NoScaffold(similarity.Fingerprinter):
    """The control: copydetect without the scaffold as boilerplate."""

    def __init__(self, k, boilerplate_texts):
        super().__init__(k, [])


def test_untouched_stubs_share_nothing(report, monkeypatch):
    stubs = report["pairs"][frozenset(("stub_tree", "stub_flat"))]
    assert stubs["similarity"] == 0 and not stubs["flagged"] and stubs["functions"] == {}
    assert all(score is None for score in stubs["files"].values())  # nothing left to compare after the scaffold
    notes = report["data"]["submissions_found"]["stub_flat"]["notes"]
    assert any(n.startswith("unchanged stubs: ") and "iterative_decoding" in n for n in notes), notes
    # the control: the stubs' own code (MaskGit.forward's given first line) matches when the scaffold is not
    # boilerplate, so the zero above is the scaffold's exclusion at work
    subs = report["root"] / "stubs_only"
    for name in ("stub_tree", "stub_flat"):
        shutil.copytree(report["subs"] / name, subs / name)
    monkeypatch.setattr(similarity, "Fingerprinter", NoScaffold)
    data = similarity.run(subs, report["root"] / "unguarded", 0.5, str(LAB), similarity.DEFAULT_NOISE, False)
    assert f"{MODEL}::MaskGit.forward" in data["pairs"][0]["functions"], data["pairs"][0]


def test_csv_ranks_every_pair(report):
    with open(report["out"] / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15  # 6 submissions
    assert [float(r["similarity"]) for r in rows] == sorted((float(r["similarity"]) for r in rows), reverse=True)
    top = rows[0]
    assert {top["submission_a"], top["submission_b"]} == {"carol", "mallory"} and top["flagged"] == "1"
    assert float(top[LAYER]) >= 0.5 and set(STUDENT_FILES) <= set(top)


def _line(html_text: str, code: str) -> str:
    [line] = [ln for ln in html_text.split("\n") if code in ln.replace("<mark>", "").replace("</mark>", "")]
    return line


def test_html_shows_matched_lines_of_both_files(report):
    page = (report["out"] / "index.html").read_text()
    assert '<a href="#pair-1">' in page and "hw3/layers.py" in page
    pairs_part = page.split('id="pair-1"')[1].split("Notes on the submissions")[0]
    assert "dave" not in pairs_part and "ref" not in pairs_part.split("<h3>")[0]  # only the flagged pair is shown
    attention = pairs_part.split("<h3>MultiHeadAttention.forward")[1].split("<h3>")[0]
    carol, mallory = attention.split("<h4>carol:")[1].split("<h4>mallory:")
    # the same statement on both sides, each in its own names, marked as matching (and escaped)
    for side, code in ((carol, "context = torch.matmul(weights, value).permute(0, 2, 1, 3)"),
                       (mallory, "merged = torch.matmul(att, v_).permute(0, 2, 1, 3)")):
        line = _line(side, code)
        assert line.startswith('<span class="hit">') and "<mark>" in line, line
    assert "def forward(self, x):" in _line(carol, "def forward(self, x):")  # the def line, for context
    assert 'class="ctx"' in _line(carol, "def forward(self, x):")
    banner = _line(carol, "# ============================== TODO1")
    assert "<mark>" not in banner and "hit" not in banner  # the scaffold's banner never counts
    assert "<script" not in page and "http" not in page  # one offline file


def test_html_escapes_code(tmp_path):
    subs = tmp_path / "subs"
    evil = {(INPAINT, "iterative_decoding"): """
        tag = "<script>alert('x')</script>" if total_iter > 0 and sweet_spot is None else "<b>"
        history = [tag for _ in range(total_iter) if tag != "<i>"]
        return z_indices.masked_fill(mask, 0), [(z_indices, mask) for _ in history if len(tag) > 3]
    """}
    write_tree(subs / "<one>", evil)
    write_tree(subs / "two&", evil)
    out = tmp_path / "report"
    similarity.main([str(subs), "--out", str(out), "--base", str(LAB)])
    page = (out / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;one&gt;" in page and "two&amp;" in page


@pytest.mark.parametrize("case, message", [
    ("missing", "submissions folder not found"),
    ("empty", "no submission subfolders"),
    ("out_not_empty", "pass --force"),
    ("out_is_file", "not a folder"),
    ("out_inside", "inside the submissions folder"),
    ("base_is_reference", "no TODO stubs"),
    ("bad_threshold", "--threshold"),
])
def test_bad_input_is_one_clear_error(tmp_path, case, message):
    subs, out = tmp_path / "subs", tmp_path / "report"
    base = LAB
    if case != "missing":
        subs.mkdir()
    if case not in ("missing", "empty"):
        write_tree(subs / "a", {})
    if case == "out_not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("old")
    if case == "out_is_file":
        out.write_text("x")
    if case == "out_inside":
        out = subs / "report"
    if case == "base_is_reference":
        base = REPO / "solutions"
    args = [str(subs), "--out", str(out), "--base", str(base)]
    if case == "bad_threshold":
        args += ["--threshold", "1.5"]
    with pytest.raises(SystemExit) as exc:
        similarity.main(args)
    assert message in str(exc.value) and str(exc.value).startswith("error: ")
    if case == "out_not_empty":
        assert (out / "keep.txt").read_text() == "old"  # untouched


def test_force_replaces_a_report_only(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "report"
    write_tree(subs / "a", CAROL)
    write_tree(subs / "b", MALLORY)
    similarity.main([str(subs), "--out", str(out), "--base", str(LAB), "--threshold", "0.99"])
    assert not json.loads((out / "pairs.json").read_text())["pairs"][0]["flagged"]
    similarity.main([str(subs), "--out", str(out), "--base", str(LAB), "--force"])
    assert json.loads((out / "pairs.json").read_text())["pairs"][0]["flagged"]
    assert sorted(p.name for p in out.iterdir()) == sorted(similarity.REPORT_FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "subs"]  # no staging folder left behind
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="holds more than a report"):  # --force never deletes other things
        similarity.main([str(subs), "--out", str(out), "--base", str(LAB), "--force"])
    assert (out / "notes.txt").read_text() == "mine" and (out / "index.html").is_file()


def given_code(rel: str) -> str:
    """The body of the longest given (not TODO) function of the lab's ``rel``, dedented: scaffold code."""
    text = (LAB / rel).read_text()
    lines = text.split("\n")
    given = [f for f in _functions(ast.parse(text)).values() if not any(isinstance(s, ast.Raise) for s in f.body)]
    longest = max(given, key=lambda f: f.end_lineno - f.lineno)
    start = longest.body[1 if isinstance(longest.body[0], ast.Expr) else 0].lineno
    return textwrap.dedent("\n".join(lines[start - 1:longest.end_lineno]))


def test_scaffold_code_pasted_into_a_todo_never_counts(tmp_path, monkeypatch):
    """Both paste the same given function into train_one_epoch before their own (different) code: the pasted
    scaffold is boilerplate, so the pair stays apart; without the scaffold as boilerplate it would be flagged."""
    subs = tmp_path / "subs"
    key = (TRAIN, "TrainTransformer.train_one_epoch")
    paste = given_code(TRAIN)
    assert len(paste.split("\n")) >= 20
    for name, own in (("x", CAROL), ("y", DAVE)):
        write_tree(subs / name, {key: paste + "\n" + textwrap.dedent(own[key])})
    data = similarity.run(subs, tmp_path / "report", 0.5, str(LAB), similarity.DEFAULT_NOISE, False)
    [pair] = data["pairs"]
    assert not pair["flagged"] and pair["similarity"] < 0.35, pair

    monkeypatch.setattr(similarity, "Fingerprinter", NoScaffold)
    data = similarity.run(subs, tmp_path / "unguarded", 0.5, str(LAB), similarity.DEFAULT_NOISE, False)
    assert data["pairs"][0]["flagged"], data["pairs"][0]  # the control: the paste alone is enough to flag
