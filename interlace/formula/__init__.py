"""Formula handling: split lme4 formulas, expand random-effects shorthands."""
from .parse import RandomTermSpec, model_terms, parse_random, parse_random_term, split_call_args, split_formula

__all__ = ["RandomTermSpec", "model_terms", "parse_random", "parse_random_term", "split_call_args", "split_formula"]
