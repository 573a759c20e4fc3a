"""The standard report outputs, registered through the ``segbench_reporters`` hook exactly
as a third-party reporter is: the tables (runs.csv, summary.csv, per_class.csv), summary.md,
the plots, and index.html, which shows the sections every earlier reporter returned (the
plots among them). Their code is segbench's library (segbench.report), imported only when a
report is drawn, so that loading this plugin costs nothing."""

from segbench import PAGE_ORDER, hookimpl


def tables(context):
    """runs.csv (a row per run), summary.csv (a row per variant) and per_class.csv."""
    from segbench.report import write_tables

    return write_tables(context)


def markdown(context):
    """summary.md: the summary table as GitHub Markdown."""
    from segbench.report import write_markdown

    return write_markdown(context)


def plots(context):
    """plots/*.png, each also a section of index.html."""
    from segbench.report import draw_plots

    return draw_plots(context)


def page(context):
    """index.html: the self-contained report, with the sections of the reporters before it."""
    from segbench.report import write_page

    return write_page(context)


@hookimpl
def segbench_reporters(register):
    register.add_reporter("tables", tables)
    register.add_reporter("markdown", markdown)
    register.add_reporter("plots", plots)
    register.add_reporter("html", page, order=PAGE_ORDER)
