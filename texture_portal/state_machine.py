"""Allowed status transitions, checked in one place for every state machine of the domain."""

from texture_portal.exceptions import InvalidTransition


class Transitions:
    """A table of allowed moves: {from_value: {to_value, …}}. Services call `check` before every change."""

    def __init__(self, name: str, choices, moves: dict[str, set[str]]):
        self.name = name
        self.choices = choices
        self.moves = moves
        unknown = {v for k, vs in moves.items() for v in {k, *vs}} - set(choices.values)
        if unknown:
            raise ValueError(f"{name}: unknown states {sorted(unknown)}")

    def allowed_from(self, current: str) -> set[str]:
        return set(self.moves.get(current, set()))

    def can(self, current: str, new: str) -> bool:
        return new in self.moves.get(current, set())

    def check(self, current: str, new: str) -> None:
        if not self.can(current, new):
            label = dict(self.choices.choices)
            allowed = ", ".join(sorted(str(label[s]) for s in self.allowed_from(current))) or "none"
            raise InvalidTransition(
                f"{self.name} cannot go from “{label.get(current, current)}” to “{label.get(new, new)}” "
                f"(allowed: {allowed}).",
                extra={"from": current, "to": new},
            )
