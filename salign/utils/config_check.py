"""Validate a training or decoding config against the task's real parser and classes, without building anything.

What ESPnet's ``--print_config`` does not catch, and a model build only catches after earlier stages ran (a 35-line
traceback), or never (a value out of range trains silently wrong), is found here in a second, as one line each::

    ERROR [check_config]: conf/x.yaml:42: align_conf.lambda_mx: unknown key of AdversarialAlign (fix: lambda_max?)

Checked (:func:`check_config`):

* top-level keys: known to the task's parser (``SAlignSTTask``, ``LLMSTTask``, ESPnet's ``STTask``; decoding
  configs: ``salign.bin.st_inference``'s parser, or ESPnet's for ``--task espnet_decode``), their simple types
  (what argparse's ``type`` accepts), and their choices;
* every class choice ``X`` with ``X_conf``: the chosen class exists, and each ``X_conf`` key is an argument of its
  constructor (``inspect.signature``; the closest valid key is suggested), of a simple type (from the annotation or
  the default); ``model_conf`` against the task's model class, ``ctc_conf`` against ``CTC``, ``align: multi``'s
  members against their classes, ``optim_conf``/``scheduler_conf`` against the chosen torch optimizer / scheduler;
* ranges of the knobs that matter: :data:`NAME_RANGES` (by key name, any section), :data:`CLASS_RANGES` (per class)
  and :data:`TOP_RANGES` (top-level options) -- the one place where ranges are declared.

Each problem is a :class:`Problem` (file, YAML line of the key, dotted key, what, fix).
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import inspect
import io
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

# ---------------------------------------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers (``None``: unbounded on that side)."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return not (self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)))

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"


def _num(x: Optional[float]) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


PROB = Range(0.0, 1.0)                      # a probability (or a label in [0, 1])
DROPOUT = Range(0.0, 1.0, hi_open=True)     # a dropout rate: 1.0 drops everything
NONNEG = Range(0.0)                         # a loss weight, lambda, an update count
POSITIVE = Range(0.0, lo_open=True)         # a size, a count of epochs, a temperature, a learning rate

#: ranges by key name, in any section (config top level, any ``*_conf``): the first pattern that matches applies,
#: unless :data:`CLASS_RANGES` or :data:`TOP_RANGES` names the key
NAME_RANGES: Tuple[Tuple[str, Range], ...] = (
    (r"lsm_weight", DROPOUT),                                # label smoothing: 1.0 learns nothing
    (r"(.*_)?dropout(_rate|_prob)?|dropout_.*", DROPOUT),
    (r"(.*_)?prob|p_(lo|hi)", PROB),
    (r"(.*_)?weight|lambda(_.*)?|mtlalpha", NONNEG),
    (r"lr|(.*_)?temperature|eps|epsilon", POSITIVE),
    (r"warmup_steps|(.*_)?(start|stop|end|updates)", NONNEG),
)

#: ranges of one class's constructor arguments (``module.QualName`` -> key -> range): the knobs that matter
CLASS_RANGES: Dict[str, Dict[str, Range]] = {
    "salign.losses.adversarial.AdversarialAlign": {
        "lambda_max": NONNEG,       # negative reverses the adversarial loss
        "d_scale": NONNEG,
        "mixup_batch_prob": PROB,   # above 1 acts as 1
        "mixup_p_lo": PROB, "mixup_p_hi": PROB,
        "text_noise_prob": PROB, "text_noise_max_ratio": PROB,
        "speech_label": PROB, "text_label": PROB,
        "window": POSITIVE, "stride": POSITIVE,
        "pinned_window": NONNEG, "pinned_margin": Range(0.0, 0.5, hi_open=True),
        "adv_grad_scale": NONNEG,   # or a named setting (CLASS_WORDS)
    },
    "salign.losses.contrastive.ContrastiveAlign": {"weight": NONNEG, "temperature": POSITIVE,
                                                   "attn_temperature": POSITIVE},
    "salign.losses.ot.OTAlign": {"weight": NONNEG, "epsilon": POSITIVE, "n_iters": POSITIVE},
    "salign.st.model.SAlignSTModel": {"st_weight": NONNEG, "asr_weight": NONNEG, "mt_weight": NONNEG,
                                      "st_ctc_weight": NONNEG, "asr_task_weight": NONNEG, "input_dropout": DROPOUT},
    "salign.llm.model.SpeechLLMModel": {"st_weight": NONNEG, "mt_weight": NONNEG, "asr_weight": NONNEG,
                                        "ctc_weight": NONNEG},
    "salign.llm.projector.MLPProjector": {"stack": POSITIVE, "hidden_size": NONNEG},
    "salign.llm.projector.LinearProjector": {"stack": POSITIVE},
    "salign.st.stack.FrameStack": {"stack": POSITIVE},
    "salign.st.hubert.HuBERTEncoder": {"mask_length": POSITIVE, "mask_channel_length": POSITIVE, "layerdrop": DROPOUT},
    "salign.st.whisper.WhisperEncoder": {"mask_length": POSITIVE, "mask_channel_length": POSITIVE,
                                         "layerdrop": DROPOUT},
}

#: the words a knob that takes a number or a named setting accepts (``module.QualName`` -> key -> words)
CLASS_WORDS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "salign.losses.adversarial.AdversarialAlign": {"adv_grad_scale": ("face_value", "official")},
}

#: ranges of top-level options (the task's parser)
TOP_RANGES: Dict[str, Range] = {
    "batch_size": POSITIVE, "batch_bins": POSITIVE, "max_epoch": POSITIVE, "accum_grad": POSITIVE,
    "num_iters_per_epoch": POSITIVE, "keep_nbest_models": POSITIVE, "valid_batch_size": POSITIVE,
    "valid_batch_bins": POSITIVE, "num_workers": NONNEG, "patience": NONNEG, "ngpu": NONNEG, "grad_clip": POSITIVE,
    "nbest": POSITIVE, "beam_size": POSITIVE, "maxlenratio": NONNEG, "minlenratio": NONNEG,
    "ctc_weight": PROB, "batch_frames": NONNEG,
}

#: constructor arguments the task fills in itself: in ``X_conf`` they collide with the task's value
SUPPLIED: Dict[str, Tuple[str, ...]] = {
    "encoder": ("input_size",), "decoder": ("vocab_size", "encoder_output_size"), "align": ("dim",),
    "lm": ("token_list",), "ctc": ("odim", "encoder_output_size"),
}

TASKS = ("st", "mt", "llm", "espnet", "decode", "espnet_decode")


def range_of(key: str, owner: Optional[str] = None) -> Optional[Range]:
    """The declared range of ``key`` (in the class ``owner``, ``module.QualName``; None: a top-level option)."""
    if owner is None and key in TOP_RANGES:
        return TOP_RANGES[key]
    if owner is not None and key in CLASS_RANGES.get(owner, {}):
        return CLASS_RANGES[owner][key]
    for pattern, rng in NAME_RANGES:
        if re.fullmatch(pattern, key):
            return rng
    return None


# ---------------------------------------------------------------------------------------------------------- problems


@dataclass
class Problem:
    """One finding: ``FILE:LINE: key: what (fix: ...)``."""

    path: str
    line: Optional[int]
    key: str
    what: str
    fix: Optional[str] = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.key}: {self.what}" if self.key else f"{where}: {self.what}"
        return f"{text} (fix: {self.fix})" if self.fix else text


def closest(word: str, choices: Iterable[str]) -> Optional[str]:
    """The valid name closest to ``word`` (difflib), if any is close."""
    hits = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return hits[0] if hits else None


def _lines(node: yaml.Node, prefix: Tuple = (), out: Optional[Dict[Tuple, int]] = None) -> Dict[Tuple, int]:
    """YAML line (1-based) of every mapping key and sequence item, by key path."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for knode, vnode in node.value:
            key = prefix + (knode.value,)
            out.setdefault(key, knode.start_mark.line + 1)
            _lines(vnode, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.setdefault(prefix + (i,), item.start_mark.line + 1)
            _lines(item, prefix + (i,), out)
    return out


def load(path: str) -> Tuple[Optional[dict], Dict[Tuple, int], List[Problem]]:
    """(config, key path -> line, problems): a missing file, bad YAML or a non-mapping is a problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}, [Problem(path, None, "", "no such config", "check the path")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, {}, [Problem(path, None, "", f"cannot read it ({exc})", "check the file")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        conf = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        return None, {}, [Problem(path, mark.line + 1 if mark else None, "", f"not valid YAML: {what}",
                                  "check the indentation and quoting there")]
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        return None, {}, [Problem(path, 1, "", "a config must be a mapping of options (key: value)",
                                  "write one `key: value` per line")]
    return conf, _lines(node) if node is not None else {}, []


# ---------------------------------------------------------------------------------------------------------- types

_SIMPLE = (bool, int, float, str)


def _expected(annotation: Any) -> Tuple[Optional[type], bool]:
    """(simple type, None allowed) of an annotation; (None, _) when it is not one simple type."""
    if annotation in _SIMPLE:
        return annotation, False
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) == 1 and args[0] in _SIMPLE:
            return args[0], nullable
        others = [a for a in args if a not in (int, float)]
        if float in args and all(isinstance(a, type) and a.__module__.startswith("torch") for a in others):
            return float, nullable  # torch's ``lr: Union[float, Tensor]``
    return None, True


def _hints(func: Callable) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(inspect.unwrap(func))
    except Exception:  # an annotation that does not resolve here: fall back to the defaults
        return {}


def _type_problem(value: Any, want: type, nullable: bool) -> Optional[Tuple[str, Optional[str]]]:
    """(what, fix) if ``value`` is not a ``want`` (int: an integer; float: a number; ...)."""
    if value is None:
        return None if nullable else (f"must be a {_NAMES[want]}, got null", f"give a {_NAMES[want]}")
    if want is bool:
        if isinstance(value, bool):
            return None
        return f"must be true or false, got {value!r}", "write true or false"
    if want is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        if isinstance(value, float) and value.is_integer():
            return f"must be an integer, got {value!r}", f"write {int(value)}"
        if isinstance(value, str) and _is_number(value):
            as_int = float(value)
            fix = f"write {int(as_int)}" if as_int.is_integer() else "write an integer"
            return f"must be an integer, got the string {value!r}", f"{fix}: YAML reads {value} as a string"
        return f"must be an integer, got {value!r}", "write an integer"
    if want is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        if isinstance(value, str) and _is_number(value):
            return f"must be a number, got the string {value!r}", \
                f"write {_yaml_float(value)}: YAML reads {value} as a string"
        return f"must be a number, got {value!r}", "write a number"
    if want is str and not isinstance(value, str):
        return f"must be a string, got {value!r}", "quote it"
    return None


_NAMES = {bool: "true/false", int: "integer", float: "number", str: "string"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def _yaml_float(text: str) -> str:
    """``2e-3`` -> ``2.0e-3 or 0.002`` (what YAML 1.1 reads as a float)."""
    mant, _, exp = text.strip().lower().partition("e")
    if "." not in mant:
        mant += ".0"
    spelled = f"{mant}e{int(exp):+d}".replace("e+", "e") if exp else mant
    plain = f"{float(text):.12f}".rstrip("0").rstrip(".")
    if "." not in plain:
        plain += ".0"
    return spelled if plain == spelled else f"{spelled} or {plain}"


# ---------------------------------------------------------------------------------------------------------- checker


class _Checker:
    """Collects the problems of one config file."""

    def __init__(self, path: str, lines: Mapping[Tuple, int]) -> None:
        self.path, self.lines = path, lines
        self.problems: List[Problem] = []

    def add(self, keypath: Tuple, what: str, fix: Optional[str] = None) -> None:
        line = None
        for n in range(len(keypath), 0, -1):  # the key's own line, else its closest parent's
            line = self.lines.get(tuple(keypath[:n]))
            if line:
                break
        self.problems.append(Problem(self.path, line, _dotted(keypath), what, fix))

    def check_range(self, keypath: Tuple, value: Any, owner: Optional[str]) -> None:
        words = CLASS_WORDS.get(owner or "", {}).get(str(keypath[-1]))
        if words is not None and isinstance(value, str) and value not in words:
            near = closest(value, words)
            self.add(keypath, f"unknown setting {value!r}",
                     f"did you mean {near}?" if near else f"one of {', '.join(words)}, or a number")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        rng = range_of(str(keypath[-1]), owner)
        if rng is not None and value not in rng:
            self.add(keypath, f"{value!r} is out of range: must be {rng}", f"give a value {rng}")

    def check_kwargs(self, keypath: Tuple, conf: Any, cls: type, choice: Optional[str] = None,
                     valid: Optional[Iterable[str]] = None, skip: Sequence[str] = ()) -> None:
        """``conf`` (the ``X_conf`` mapping) against ``cls``'s constructor (``valid``: the allowed keys instead)."""
        owner = f"{cls.__module__}.{cls.__qualname__}"
        name = cls.__name__
        if conf is None:
            return
        if not isinstance(conf, Mapping):
            self.add(keypath, f"must be a mapping of {name}'s arguments, got {conf!r}", "write {key: value, ...}")
            return
        init = cls.__init__
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return
        params = {n: p for n, p in sig.parameters.items()
                  if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        allowed = set(valid) if valid is not None else set(params) - set(skip)
        supplied = SUPPLIED.get(choice or "", ())
        hints = _hints(init)
        for key, value in conf.items():
            kp = keypath + (key,)
            if key in params and (key in supplied or key not in allowed and valid is not None):
                self.add(kp, f"is set by the task, not by {_dotted(keypath)}", f"remove {key}")
                continue
            if key not in allowed:
                if open_kwargs and valid is None:
                    continue
                near = closest(key, sorted(allowed))
                fix = f"did you mean {near}?" if near else f"valid keys: {', '.join(sorted(allowed)) or 'none'}"
                self.add(kp, f"unknown key of {name}", fix)
                continue
            param = params.get(key)
            if param is not None:
                want, nullable = _expected(hints.get(key, inspect.Parameter.empty))
                if want is None and key not in hints:
                    default = param.default
                    if isinstance(default, _SIMPLE):
                        want, nullable = type(default), False
                        if want is int:  # ``weight_decay=0``: a float is fine
                            want = float
                    elif default is None:
                        want = None
                if param.default is None:
                    nullable = True
                if want is not None:
                    bad = _type_problem(value, want, nullable)
                    if bad:
                        self.add(kp, *bad)
                        continue
            self.check_range(kp, value, owner)


def _dotted(keypath: Sequence) -> str:
    out = ""
    for k in keypath:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


def _load_task(task: str):
    """The ESPnet task class (or, for decoding configs, the parser) of ``task``."""
    if task in ("st", "mt"):
        from salign.tasks.st import SAlignSTTask

        return SAlignSTTask
    if task == "llm":
        from salign.llm.task import LLMSTTask

        return LLMSTTask
    if task == "espnet":
        from espnet2.tasks.st import STTask

        return STTask
    raise ValueError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")


def _model_class(task_cls) -> Optional[type]:
    name = task_cls.__name__
    if name == "SAlignSTTask":
        from salign.st.model import SAlignSTModel

        return SAlignSTModel
    if name == "LLMSTTask":
        from salign.llm.model import SpeechLLMModel

        return SpeechLLMModel
    from espnet2.st.espnet_model import ESPnetSTModel

    return ESPnetSTModel


_PARSERS: Dict[str, argparse.ArgumentParser] = {}


def _parser(task: str) -> argparse.ArgumentParser:
    if task not in _PARSERS:
        # ESPnet's imports print (a missing flash_attn) and warn (deprecated torch APIs): not this tool's output
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if task == "decode":
                from salign.decode.parser import get_parser
            elif task == "espnet_decode":
                from espnet2.bin.st_inference import get_parser
            else:
                get_parser = _load_task(task).get_parser
            _PARSERS[task] = get_parser()
    return _PARSERS[task]


#: argparse ``type`` functions -> (simple type, None allowed), for top-level options
def _top_type(action: argparse.Action) -> Tuple[Optional[type], bool]:
    t = action.type
    name = getattr(t, "__name__", "")
    table = {"int": (int, False), "float": (float, False), "str2bool": (bool, False), "int_or_none": (int, True),
             "float_or_none": (float, True), "humanfriendly_parse_size_or_none": (float, True)}
    if t in (int, float):
        return t, action.default is None
    return table.get(name, (None, True))


def check_top_level(ck: _Checker, conf: Mapping, parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    """Top-level keys, types, choices and ranges against ``parser``; returns its actions by dest."""
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", "print_config")}
    for key, value in conf.items():
        kp = (key,)
        action = actions.get(key)
        if action is None:
            near = closest(key, actions)
            ck.add(kp, "unknown option", f"did you mean {near}?" if near else "remove it; see --print_config")
            continue
        if action.nargs not in (None, "?") or isinstance(action.default, (dict, list)) or key.endswith("_conf"):
            continue  # lists and nested mappings: checked with their class, or not at all
        if isinstance(value, str) and action.type is not None:
            try:  # argparse converts a string given in the config with the option's type
                value = action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                want, _ = _top_type(action)
                bad = _type_problem(value, want, False) if want else None
                ck.add(kp, bad[0] if bad else f"{value!r} is not a valid value",
                       bad[1] if bad else (action.help or None))
                continue
        else:
            want, nullable = _top_type(action)
            if want is not None:
                bad = _type_problem(value, want, nullable)
                if bad:
                    ck.add(kp, *bad)
                    continue
        if action.choices is not None and value not in action.choices:
            shown = [str(c).lower() if c is not None else "null" for c in action.choices]
            near = closest(str(value), shown)
            ck.add(kp, f"unknown choice {value!r}",
                   f"did you mean {near}?" if near else f"one of {', '.join(shown)}")
            continue
        ck.check_range(kp, value, None)
    return actions


def check_config(path: str, task: str = "st") -> List[Problem]:
    """Every problem of the config ``path`` for ``task`` (st, mt: salign's ST task; llm; espnet: ESPnet's STTask;
    decode / espnet_decode: a decoding config of salign's / ESPnet's st_inference)."""
    conf, lines, problems = load(path)
    if conf is None:
        return problems
    ck = _Checker(path, lines)
    parser = _parser(task)
    actions = check_top_level(ck, conf, parser)
    if task in ("decode", "espnet_decode"):
        return ck.problems
    _check_classes(ck, conf, task, actions)
    return sorted(ck.problems, key=lambda p: p.line or 0)  # in the file's order


def _check_classes(ck: _Checker, conf: Mapping, task: str, actions: Mapping[str, argparse.Action]) -> None:
    """Each class choice's ``X_conf``, ``model_conf``, ``ctc_conf``, ``optim_conf`` and ``scheduler_conf``."""
    task_cls = _load_task(task)
    for choices in task_cls.class_choices_list:
        name = choices.name
        if any(p.key == name for p in ck.problems):  # an unknown choice: reported with the top-level keys
            continue
        if name in conf and conf[name] is not None and not isinstance(conf[name], str):
            ck.add((name,), f"must be a class name, got {conf[name]!r}",
                   f"one of {', '.join(str(c) for c in choices.choices() if c)}")
            continue
        chosen = conf.get(name, actions[name].default if name in actions else choices.default)
        if chosen is None or str(chosen).lower() in ("none", "null", "nil"):
            continue
        cls = choices.classes.get(str(chosen).lower())
        if cls is None:
            if (name,) in ck.lines:
                near = closest(str(chosen), choices.classes)
                ck.add((name,), f"unknown {name} {chosen!r}",
                       f"did you mean {near}?" if near else f"one of {', '.join(choices.classes)}")
            continue
        if f"{name}_conf" in conf:
            ck.check_kwargs((f"{name}_conf",), conf[f"{name}_conf"], cls, choice=name)
            if name == "align" and getattr(cls, "__name__", "") == "CompositeAlign":
                _check_multi(ck, conf[f"{name}_conf"], choices.classes)
    model_cls = _model_class(task_cls)
    if "model_conf" in conf and model_cls is not None:
        valid = actions["model_conf"].default if "model_conf" in actions else None
        ck.check_kwargs(("model_conf",), conf["model_conf"], model_cls,
                        valid=list(valid) if isinstance(valid, dict) and valid else None)
    if "ctc_conf" in conf:
        from espnet2.asr.ctc import CTC

        ck.check_kwargs(("ctc_conf",), conf["ctc_conf"], CTC, choice="ctc")
    _check_optim(ck, conf, actions)


def _check_multi(ck: _Checker, conf: Any, classes: Mapping[str, type]) -> None:
    """``align: multi``: each ``methods[i].conf`` against its method's class."""
    methods = conf.get("methods") if isinstance(conf, Mapping) else None
    if not isinstance(methods, list):
        return
    for i, entry in enumerate(methods):
        if not isinstance(entry, Mapping):
            continue
        base = ("align_conf", "methods", i)
        for key in entry:
            if key not in ("name", "weight", "conf", "prefix"):
                near = closest(key, ("name", "weight", "conf", "prefix"))
                ck.add(base + (key,), "unknown key of an align: multi member",
                       f"did you mean {near}?" if near else "use name, weight, conf, prefix")
        if "weight" in entry:
            ck.check_range(base + ("weight",), entry["weight"], None)
        cls = classes.get(str(entry.get("name", "")).lower())
        if cls is None:
            near = closest(str(entry.get("name")), [c for c in classes if c != "multi"])
            ck.add(base + ("name",), f"unknown alignment method {entry.get('name')!r}",
                   f"did you mean {near}?" if near else f"one of {', '.join(c for c in classes if c != 'multi')}")
        elif entry.get("conf"):
            ck.check_kwargs(base + ("conf",), entry["conf"], cls, choice="align")


def _check_optim(ck: _Checker, conf: Mapping, actions: Mapping[str, argparse.Action]) -> None:
    """``optim_conf`` / ``scheduler_conf`` against the chosen optimizer's / scheduler's constructor."""
    from espnet2.tasks.abs_task import optim_classes, scheduler_classes

    for kind, table, skip in (("optim", optim_classes, ("params",)), ("scheduler", scheduler_classes,
                                                                       ("optimizer",))):
        chosen = conf.get(kind, actions[kind].default if kind in actions else None)
        cls = table.get(str(chosen).lower()) if chosen is not None else None
        if cls is not None and f"{kind}_conf" in conf:
            ck.check_kwargs((f"{kind}_conf",), conf[f"{kind}_conf"], cls, skip=skip)


def check_configs(configs: Sequence[Tuple[str, str]]) -> List[Problem]:
    """All problems of several (path, task) pairs, in order."""
    out: List[Problem] = []
    for path, task in configs:
        out.extend(check_config(path, task))
    return out


def config_argument(argv: Sequence[str]) -> Optional[str]:
    """The value of the last ``--config FILE`` / ``--config=FILE`` of a command line (argparse's rule), or None."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--config="):
            found = arg.split("=", 1)[1]
    return found


def check_entry_config(argv: Sequence[str], task: str, tool: str) -> None:
    """The checks of :func:`check_config` on the ``--config`` of an entry point's command line (``salign.bin.st_train``
    and ``llm_train``: the training config, task ``st`` / ``llm``; ``salign.bin.st_inference``: the decoding config,
    task ``decode``), in the process that is about to use it (its task is imported already: no second ESPnet start).
    Every problem is one ``ERROR [tool]: FILE:LINE: key: what (fix: ...)`` line on stderr, then exit status 2, before
    any output is written; ``--print_config``/``--help`` and a command line without ``--config`` pass."""
    import sys

    if any(a in ("--print_config", "--help", "-h") for a in argv):
        return
    path = config_argument(argv)
    if not path or not Path(path).is_file():
        return  # none given, or missing: the entry point's own parser says so
    problems = check_config(path, task)
    for problem in problems:
        print(f"ERROR [{tool}]: {problem}", file=sys.stderr)
    if problems:
        sys.exit(2)
