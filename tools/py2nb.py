"""Authoring aid: turn a percent-format script (``# %%`` cells) into a stripped notebook.

    python tools/py2nb.py notebooks/src.py notebooks/00_data_prep.ipynb

``# %% [markdown]`` starts a markdown cell (lines prefixed with ``# ``), ``# %% parameters`` a code cell tagged
``parameters``. Notebooks are the source of truth once written; edit them in JupyterLab afterwards.
"""

import sys

import nbformat


def convert(src: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    cells, kind, buf = [], None, []

    def flush():
        if kind is None:
            return
        text = "\n".join(buf).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.split("\n"))
            cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            c = nbformat.v4.new_code_cell(text)
            if kind == "parameters":
                c.metadata["tags"] = ["parameters"]
            cells.append(c)

    for line in src.split("\n"):
        if line.startswith("# %%"):
            flush()
            rest = line[4:].strip()
            kind = "markdown" if rest == "[markdown]" else "parameters" if rest == "parameters" else "code"
            buf = []
        else:
            buf.append(line)
    flush()
    for i, c in enumerate(cells):
        c["id"] = f"cell-{i:02d}"
    nb.cells = cells
    return nb


if __name__ == "__main__":
    nbformat.write(convert(open(sys.argv[1]).read()), sys.argv[2])
