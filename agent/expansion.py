"""`$(VAR)` expansion in env values, command and args, exactly as Kubernetes does it (pure).

A port of the kubelet's k8s.io/kubernetes/third_party/forked/golang/expansion:
`$(NAME)` is replaced by the variable's value when it is defined and left as
written when not; `$$` is an escaped `$`; a `$` before anything else, an
unclosed `$(`, and a trailing `$` stay as they are. There is no nesting: the
name runs to the first `)`.

`container_env` folds a container's variables (in the order the master sends
them: envFrom, then env, names may repeat) the way the kubelet builds its
environment: each plain value is expanded with the variables defined before it,
a value from a ConfigMap, Secret or field is taken as it is, and a later
definition replaces an earlier one. `expand_all` then expands command and args
with the final environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from agent.model import EnvVar

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """Looks a name up in each context in turn; an unknown name stays `$(NAME)`."""

    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"{_OPERATOR}{_OPENER}{name}{_CLOSER}"

    return lookup


def _read_name(rest: str) -> tuple[str, bool, int]:
    """After a `$`: (text, is a variable name, characters consumed)."""
    if rest[0] == _OPERATOR:
        return _OPERATOR, False, 1
    if rest[0] == _OPENER:
        end = rest.find(_CLOSER, 1)
        if end != -1:
            return rest[1:end], True, end + 1
        return _OPERATOR + _OPENER, False, 1
    return _OPERATOR + rest[0], False, 1


def expand(text: str, mapping: Callable[[str], str]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == _OPERATOR and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_name, advance = _read_name(text[cursor + 1 :])
            out.append(mapping(read) if is_name else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def container_env(variables: Iterable[EnvVar]) -> dict[str, str]:
    """The container's final environment, in first-definition order."""
    env: dict[str, str] = {}
    for var in variables:
        env[var.name] = var.value if var.from_source else expand(var.value, mapping_for(env))
    return env


def expand_all(texts: Iterable[str], env: Mapping[str, str]) -> tuple[str, ...]:
    lookup = mapping_for(env)
    return tuple(expand(t, lookup) for t in texts)
