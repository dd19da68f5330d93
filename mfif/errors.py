"""Errors raised for user input. Messages are one line and name the file and the problem."""


class MfifError(Exception):
    """Base class of every error mfif raises on purpose (the CLI prints it as one line)."""


class InputError(MfifError, ValueError):
    """Bad input: unreadable file, wrong shape, wrong dtype, NaN, mismatched sizes, too few frames."""


class OutputError(MfifError, OSError):
    """An output cannot be written (would overwrite an input, directory not writable, ...)."""


class WeightsError(MfifError, ValueError):
    """A weights file has the wrong format or shape for the requested network."""


def weights_load_error(path, exc: BaseException, expected: str) -> WeightsError:
    """One line for a weights file that ``torch.load(weights_only=True)`` refused.

    Names the file, says why in plain words and what was expected; it never repeats PyTorch's
    advice to retry with ``weights_only=False`` (which would run code from a hostile file).
    Use: ``except Exception as exc: raise weights_load_error(path, exc, "IFCNN weights (.pt)") from None``.
    """
    text = str(exc)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        head = b""
    if head and not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        reason = f"it starts with {head!r}, not like a torch file"
    elif "WeightsUnpickler error" in text or exc.__class__.__name__ == "UnpicklingError":
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        detail = detail[0].strip() if detail and "weights_only" not in detail[0] else "refused by the safe loader"
        reason = (f"it holds pickled Python objects other than tensors ({detail}); refused: they are never run "
                  "or loaded")
    elif "zip archive" in text or "central directory" in text or isinstance(exc, EOFError):
        reason = "the file is truncated or damaged: its zip archive cannot be read"
    else:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        reason = f"{exc.__class__.__name__}: {first[:120]}" if first and "weights_only" not in first else (
            exc.__class__.__name__)
    return WeightsError(f"{path}: not a readable torch weights file ({reason}); expected {expected}")


def load_torch_weights(path, expected: str, *, map_location="cpu"):
    """``torch.load(path, weights_only=True)`` for a weights file: tensors and plain containers
    only; any failure is one :class:`WeightsError` line (:func:`weights_load_error`), and
    PyTorch's own warnings about the pickle inside are not passed on (the error says it all)."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle / zip errors of many types
        raise weights_load_error(path, exc, expected) from None
