"""The two run-time failures of a generation engine (rag/engine.py), in a module of their own so the engines and
the CLI import them without importing each other."""


class AdapterNotApplied(RuntimeError):
    """An adapter arm answered exactly as the base model: the engine did not apply the adapter (the CLI: one
    line, exit 1)."""


class EngineDown(ConnectionError):
    """The generation server stopped answering (after retries); the answers so far are kept. A ConnectionError,
    so the CLI prints it as one line and exits 1, like other run-time I/O failures."""
