# R's coxme side of benchmarks/run_benchmarks.py (run by it, not by hand).
#
# Usage: R_LIBS=../shared/r-lib Rscript benchmarks/coxme_worker.R SPEC.json
#
# coxme is not a Debian package; the harness points R_LIBS at the build of coxme 2.2-22 and
# bdsmatrix 1.3-7 for this machine (--coxme-lib, $COXME_R_LIBS, default ../shared/r-lib) and
# skips this tool with a note when that folder is absent.
#
# SPEC.json (written by run_benchmarks.py) holds:
#   mode      "time" (warm-up fit, then `repeats` timed fits) or "baseline"
#             (load the packages and the data, fit nothing)
#   data      path of the CSV the Python tools read too
#   factors   columns converted with factor() after reading
#   formula   the coxme formula, e.g. "Surv(time, status) ~ x + z + (1 | g)"
#   ties      "efron" or "breslow"
#   repeats   number of timed fits
#   progress  optional file to which each finished fit appends "label seconds"
#   out       where to write the result JSON
#
# Timing is `system.time(coxme(...))[["elapsed"]]` around the fitting call only, with the
# default coxme.control(); reading the CSV and building factors are excluded.  Between fits
# the previous model is removed and gc() runs.
#
# Reported: fixed effects, VarCorr (variances; correlations off the diagonal), the integrated
# log-likelihood (loglik["Integrated"]), and as evaluations the number of calls of coxme's
# objective: its starting grid plus optim's function count and two per variance and gradient
# (coxme's BFGS uses central finite differences), plus the final fit; the formula is for scalar
# random intercepts, the only terms the benchmark's models have.

suppressPackageStartupMessages({
  library(coxme)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript coxme_worker.R SPEC.json")
spec <- fromJSON(args[[1]], simplifyVector = TRUE)

data <- read.csv(spec$data)
for (v in spec$factors) data[[v]] <- factor(data[[v]])

versions <- list(
  R = R.version.string,
  coxme = as.character(packageVersion("coxme")),
  bdsmatrix = as.character(packageVersion("bdsmatrix")),
  survival = as.character(packageVersion("survival")),
  blas = unname(extSoftVersion()[["BLAS"]])
)
result <- list(status = "ok", mode = spec$mode, versions = versions, nrow = nrow(data))

note_progress <- function(label, seconds) {
  if (!is.null(spec$progress) && nzchar(spec$progress)) {
    cat(sprintf("%s %.6g\n", label, seconds), file = spec$progress, append = TRUE)
  }
}

if (identical(spec$mode, "time")) {
  form <- as.formula(spec$formula)
  ties <- if (is.null(spec$ties)) "efron" else spec$ties
  # counts of optim's calls, recorded by a trace on optim (its exit), for the evaluation count
  assign(".optim_counts", NULL, envir = globalenv())
  invisible(suppressMessages(trace("optim", exit = quote(assign(".optim_counts", returnValue()$counts, envir = globalenv())),
                         print = FALSE)))
  fit_once <- function() {
    elapsed <- system.time(m <- coxme(form, data = data, ties = ties))[["elapsed"]]
    list(model = m, seconds = unname(elapsed))
  }
  warm <- fit_once()
  note_progress("warm-up", warm$seconds)
  rm(warm)
  invisible(gc())
  seconds <- numeric(0)
  m <- NULL
  for (i in seq_len(spec$repeats)) {
    m <- NULL
    invisible(gc())
    f <- fit_once()
    note_progress(paste0("fit", i), f$seconds)
    seconds <- c(seconds, f$seconds)
    m <- f$model
    rm(f)
  }
  invisible(suppressMessages(untrace("optim")))
  counts <- get(".optim_counts", envir = globalenv())
  vc <- VarCorr(m)
  cov <- lapply(names(vc), function(g) {
    mat <- as.matrix(vc[[g]])
    if (length(mat) == 1) mat <- matrix(mat, 1, 1)
    attributes(mat) <- list(dim = dim(mat))
    nm <- if (is.null(colnames(vc[[g]]))) "(Intercept)" else colnames(vc[[g]])
    list(group = g, names = I(nm), matrix = mat)
  })
  # the benchmark's models have scalar random intercepts only: one variance each, a starting grid of
  # 4 values per variance (coxme.control's varinit), two objective calls per variance and gradient
  nvar <- length(unlist(vc))
  n_evals <- if (is.null(counts)) NA_integer_ else
    as.integer(4L^nvar + counts[["function"]] + 2L * nvar * counts[["gradient"]] + 1L)   # + the final fit
  result <- c(result, list(
    seconds = I(seconds),
    fe = as.list(fixef(m)),
    cov = cov,
    residual_var = 1,
    llf = unname(m$loglik[["Integrated"]]),
    n_evals = n_evals,
    optim_counts = if (is.null(counts)) NULL else as.list(counts),
    inner_iter = m$iter[[2]],
    messages = I(character(0))
  ))
}

writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, null = "null"), spec$out)
