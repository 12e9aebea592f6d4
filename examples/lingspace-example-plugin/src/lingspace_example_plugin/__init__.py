"""An example lingspace-harness plugin: two phenomena from packaged jsonl files.

Installed, it is the entry point ``example`` in the ``lingspace_harness`` group (see
pyproject.toml). It uses only the public ``lingspace_harness`` API and imports nothing
heavy: the harness imports every plugin on each start, so pairs are read only when a
run asks for the task (``Task.load``).
"""

from __future__ import annotations

from functools import partial
from importlib.resources import as_file, files

from lingspace_harness import DataOptions, MinimalPair, Task, hookimpl
from lingspace_harness.pairs import read_pairs_jsonl

__version__ = "0.1.0"

#: Where the pairs live inside the installed package (see ``package-data`` in pyproject.toml).
DATA_DIR = "data"
SOURCE = "lingspace-example-plugin"

#: task name -> (phenomenon, field, description). Each task reads ``data/<name>.jsonl``.
TASKS: dict[str, tuple[str, str, str]] = {
    "example_subject_aux_agreement": (
        "subject_verb_agreement",
        "morphology",
        "an auxiliary (is/are, was/were, has/have, does/do) agrees in number with its "
        "subject, also across a prepositional phrase or relative clause and in questions",
    ),
    "example_reflexive_number": (
        "anaphor_agreement",
        "morphology",
        "a reflexive pronoun (itself, himself, herself, themselves) agrees in number with its antecedent",
    ),
}


def load_pairs(task_name: str, options: DataOptions | None = None) -> list[MinimalPair]:
    """Read and validate the packaged pairs of ``task_name``.

    ``options`` (``--data-dir``) is not needed here: the data ships with the package.
    ``as_file`` gives a real path even when the package is imported from a zip file.
    """
    resource = files(__name__) / DATA_DIR / f"{task_name}.jsonl"
    with as_file(resource) as path:
        return read_pairs_jsonl(path)


@hookimpl
def lingspace_register_phenomena(register):
    for name, (phenomenon, field, description) in TASKS.items():
        register(
            Task(
                name=name,
                phenomenon=phenomenon,
                field=field,
                source=SOURCE,
                load=partial(load_pairs, name),
                group="example",
                description=description,
            )
        )
