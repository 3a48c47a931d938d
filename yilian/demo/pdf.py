"""A minimal one-page PDF (PDF 1.4, Helvetica, ASCII text) for the demo's signed agreements.

The demo needs a real, openable file behind the "signed agreement" link; a PDF library
would be a dependency for a few lines of text.
"""

from __future__ import annotations

_TYPOGRAPHY = str.maketrans({"–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "·": "-"})


def _escape(text: str) -> str:
    """ASCII for the built-in font (typographic punctuation mapped, anything else as '?')."""
    ascii_text = text.translate(_TYPOGRAPHY).encode("ascii", "replace").decode()
    return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def simple_pdf(lines: list[str]) -> bytes:
    """One A4 page with ``lines`` of text, top to bottom."""
    text = ["BT", "/F1 12 Tf", "16 TL", "72 770 Td"]
    for i, line in enumerate(lines):
        text.append(f"({_escape(line)}) Tj" if i == 0 else f"T* ({_escape(line)}) Tj")
    text.append("ET")
    stream = "\n".join(text).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
