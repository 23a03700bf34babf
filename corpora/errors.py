"""The one error type for bad user input. The CLI prints it on one line and exits with code 2."""


class InputError(Exception):
    """Bad input from the user: a file, a line where known, and what is wrong.

    str(err) is the whole message, e.g. "corpora/x/qa.jsonl:12: missing field 'question'".
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")
        self.path, self.line, self.message = path, line, message
