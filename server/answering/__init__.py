"""The answering core: evidence, composing, checking, abstaining, evaluation. No HTTP here."""
