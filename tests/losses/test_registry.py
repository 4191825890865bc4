"""The loss package's registry: salign's methods, registration rules, and the task reading it (not a copy)."""
import pytest
import torch

from salign.losses.abs_align import AbsAlign
from salign.losses.adversarial import AdversarialAlign
from salign.losses.composite import CompositeAlign, member_methods
from salign.losses.contrastive import ContrastiveAlign
from salign.losses.ot import OTAlign
from salign.losses.registry import ALIGN_METHODS, align_methods, register


class _Zero(AbsAlign):
    def __init__(self, dim: int) -> None:
        super().__init__()

    def forward(self, batch):
        return batch.speech.new_zeros(()), {}


@pytest.fixture
def clean_registry():
    before = dict(ALIGN_METHODS)
    yield
    ALIGN_METHODS.clear()
    ALIGN_METHODS.update(before)


def test_salign_methods_are_registered():
    assert align_methods() == {"adversarial": AdversarialAlign, "contrastive": ContrastiveAlign, "ot": OTAlign,
                               "multi": CompositeAlign}
    assert list(ALIGN_METHODS) == ["adversarial", "contrastive", "ot", "multi"]  # the order --align lists them
    assert align_methods() is not ALIGN_METHODS  # a copy
    assert "multi" not in member_methods() and member_methods()["ot"] is OTAlign


def test_registration_rules(clean_registry):
    assert register("zero")(_Zero) is _Zero
    assert register("zero")(_Zero) is _Zero  # the same class again: a no-op
    with pytest.raises(ValueError, match="already .*_Zero"):
        register("zero")(type("Other", (_Zero,), {}))
    with pytest.raises(ValueError, match="lower-case"):
        register("Zero")
    with pytest.raises(ValueError, match="lower-case"):
        register("none")
    with pytest.raises(TypeError, match="not a subclass"):
        register("lin")(torch.nn.Linear)


def test_a_late_registration_is_a_task_choice_and_a_member(clean_registry):
    from salign.tasks.st import SAlignSTTask, align_choices

    register("zero")(_Zero)
    assert align_choices.get_class("zero") is _Zero
    assert SAlignSTTask.get_parser().parse_args(["--align", "zero"]).align == "zero"
    multi = CompositeAlign(4, methods=[{"name": "zero"}])
    assert isinstance(multi.methods["zero"], _Zero)


def test_the_loss_package_imports_nothing_above_it():
    """No import cycle: salign.losses and its modules import neither salign.tasks nor salign.st (checked on the
    source, so a lazy import inside a function counts too)."""
    import ast
    from pathlib import Path

    import salign.losses

    for path in Path(salign.losses.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] != "salign" or name.startswith(("salign.losses", "salign.utils")), \
                    f"{path.name} imports {name}"
