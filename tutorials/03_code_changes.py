# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Code changes: results reused only while the code behind them is unchanged
#
# A small project: `helpers.py` holds a helper and a constant, `pipeline.py`
# the ops. With `Storage(deps_path=...)` an op's version covers its own code
# and every helper, class and constant it reaches in the project. We edit
# the project step by step, the way you would in an editor, and watch what
# is recomputed, with `storage.diff` to show why and `storage.explain` to ask
# before running.
#
# Run it with `python tutorials/03_code_changes.py`, from any folder, or open
# it as a notebook (`jupytext --to ipynb tutorials/03_code_changes.py`). The
# project and the store go under `tutorials/output/` (or
# `MEMOSTORE_TUTORIAL_DIR`). The store is kept, and it remembers every
# version: run the tutorial again and each edit finds its results already
# stored, so nothing is computed.

# %%
import importlib
import linecache
import os
import shutil
import sys
import textwrap
from pathlib import Path

from memostore import Storage

# The project and the store go beside this file (beside the notebook, in Jupyter), or in MEMOSTORE_TUTORIAL_DIR.
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
out_dir = Path(os.environ.get("MEMOSTORE_TUTORIAL_DIR") or here / "output")
project = out_dir / "code_changes" / "shop"
project.mkdir(parents=True, exist_ok=True)
sys.dont_write_bytecode = True  # every reload below reads the edited files

(project / "__init__.py").write_text("")
(project / "helpers.py").write_text(textwrap.dedent('''
    VAT = 0.2


    def with_vat(price):
        """Price including VAT."""
        return round(price * (1 + VAT), 2)


    def discount(price, percent):
        return price * (1 - percent / 100)
'''))
(project / "pipeline.py").write_text(textwrap.dedent('''
    from memostore import op
    from shop.helpers import discount, with_vat

    COMPUTED = []


    @op
    def gross(net):
        COMPUTED.append(f"gross({net})")
        return with_vat(net)


    @op
    def sale(price, percent):
        COMPUTED.append(f"sale({price}, {percent})")
        return discount(price, percent)
'''))
sys.path.insert(0, str(project.parent))
import shop.pipeline  # noqa: E402, F401 - the project written above

db_path = out_dir / "code_changes.db"
storage = Storage(db_path=db_path, deps_path=str(project))
EVER_COMPUTED = []


def run(title):
    """Run the pipeline; print what was computed."""
    pipeline = sys.modules["shop.pipeline"]
    pipeline.COMPUTED.clear()
    with storage:
        totals = [pipeline.gross(net) for net in (10, 20)]
        sales = [pipeline.sale(net, 10) for net in (10, 20)]
    EVER_COMPUTED.extend(pipeline.COMPUTED)
    computed = ", ".join(pipeline.COMPUTED) or "nothing"
    print(f"{title}: computed {computed}")
    print(f"    gross: {storage.unwrap(totals)}, sale: {storage.unwrap(sales)}")
    return pipeline


def edit(old, new):
    """Change helpers.py as an editor would, then reload the project (as a restarted kernel would)."""
    path = project / "helpers.py"
    path.write_text(path.read_text().replace(old, new))
    linecache.checkcache(str(path))
    importlib.reload(sys.modules["shop.helpers"])
    return importlib.reload(sys.modules["shop.pipeline"])


# %% [markdown]
# ## The original code: everything is computed (the first time)

# %%
pipeline = run("The original code")

# %% [markdown]
# ## A cosmetic change: comments, a docstring, formatting
# Nothing is recomputed: only what the code does counts.

# %%
pipeline = edit('"""Price including VAT."""', '"""The price a customer pays."""  # rounded to cents')
pipeline = run("After a cosmetic change")

# %% [markdown]
# ## A constant changes: the ops that read it recompute
# `gross` reaches `VAT` through `with_vat`; `sale` does not.

# %%
first_version = storage.version_of(pipeline.gross)
pipeline = edit("VAT = 0.2", "VAT = 0.25")
print(storage.explain(pipeline.gross, 10))  # ask before running
pipeline = run("After VAT = 0.25")
print(storage.diff(pipeline.gross, first_version, storage.version_of(pipeline.gross)))

# %% [markdown]
# ## A helper changes: only the ops that reach it recompute

# %%
pipeline = edit("return price * (1 - percent / 100)", "return round(price * (1 - percent / 100), 2)")
pipeline = run("After editing discount()")

# %% [markdown]
# ## A compatible change: tell memostore the results still hold
# A refactor that cannot change results still makes a new version. Rather
# than recompute, carry the stored calls over with `mark_compatible`; the
# risk is yours, so keep it for changes you are sure of.

# %%
pipeline = edit("    return round(price * (1 + VAT), 2)",
                "    gross_price = price * (1 + VAT)\n    return round(gross_price, 2)")
carried = storage.mark_compatible(pipeline.gross)
print(f"Carried {carried} calls of gross over to its new version")
pipeline = run("After a compatible refactor")

# %% [markdown]
# ## Stale work, and where a value came from
# Calls of versions that are no longer current stay stored (that is why a
# second run of this tutorial computes nothing). To reclaim their space,
# drop them with everything computed from them. Deleting is for real, so we
# do it on a copy of the store; `storage.backup` copies it safely while open.

# %%
trial_path = out_dir / "code_changes_trial.db"
for leftover in (trial_path, Path(f"{trial_path}-wal"), Path(f"{trial_path}-shm")):  # the last run's copy
    leftover.unlink(missing_ok=True)
shutil.rmtree(f"{trial_path}-blobs", ignore_errors=True)
storage.backup(trial_path)
trial = Storage(db_path=trial_path, deps_path=str(project))
stale = trial.stale_calls()
print(f"{len(stale)} calls of old versions: {sorted(c.op for c in stale)}")
trial.drop_calls(stale)
print(f"Reclaimed: {trial.cleanup_refs()}")
print(trial.versions(pipeline.gross)[["version", "calls", "is_current", "dependencies"]].to_string(index=False))
with storage:
    total = pipeline.gross(10)
print(storage.lineage(total))

# %% [markdown]
# ## What this run computed

# %%
if EVER_COMPUTED:
    print(f"This run computed {len(EVER_COMPUTED)} calls")
else:
    print("This run computed nothing: every result was loaded from the store of an earlier run")
