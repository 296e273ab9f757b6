"""Reports: tables (Markdown, CSV, LaTeX) and figures of a finished run."""
