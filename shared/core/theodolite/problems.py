"""A problem found in user input: where it is and what is wrong. Validators collect every
problem rather than stopping at the first, so users fix everything in one round."""

from __future__ import annotations

from pydantic import BaseModel


class Problem(BaseModel):
    field: str
    message: str


class ProblemsError(ValueError):
    """Input with one or more problems."""

    def __init__(self, title: str, problems: list[Problem]) -> None:
        super().__init__(f"{title}: " + "; ".join(f"{p.field}: {p.message}" for p in problems))
        self.title = title
        self.problems = problems
