# R's ordinal::clmm side of benchmarks/run_benchmarks.py (run by it, not by hand).
#
# Usage: Rscript benchmarks/ordinal_worker.R SPEC.json
#
# SPEC.json (written by run_benchmarks.py) holds:
#   mode      "time" (warm-up fit, then `repeats` timed fits) or "baseline"
#             (load the packages and the data, fit nothing)
#   data      path of the CSV the Python tools read too
#   factors   columns converted with factor() after reading
#   response  the ordinal response, converted with factor(ordered = TRUE) (levels in sorted order)
#   formula   the clmm formula, e.g. "rating ~ x + (1 | judge) + (1 | item)"
#   link      the cumulative link ("logit", ...)
#   repeats   number of timed fits
#   progress  optional file to which each finished fit appends "label seconds"
#   out       where to write the result JSON
#
# Timing is `system.time(clmm(...))[["elapsed"]]` around the fitting call only, with the
# default clmm.control() (nlminb, Laplace); reading the CSV and building factors are excluded.
# Between fits the previous model is removed and gc() runs.
#
# Reported: the thresholds and coefficients (coef(m), ordinal's order), the random-effect
# variances (VarCorr), the Laplace log-likelihood, and as evaluations `m$neval` (evaluations of
# the Laplace objective, those of nlminb's finite-difference gradients included); `m$Niter`
# (inner Newton iterations for the conditional modes) as inner_iter.

suppressPackageStartupMessages({
  library(ordinal)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript ordinal_worker.R SPEC.json")
spec <- fromJSON(args[[1]], simplifyVector = TRUE)

data <- read.csv(spec$data)
for (v in spec$factors) data[[v]] <- factor(data[[v]])
data[[spec$response]] <- factor(data[[spec$response]], ordered = TRUE)

versions <- list(
  R = R.version.string,
  ordinal = as.character(packageVersion("ordinal")),
  ucminf = as.character(packageVersion("ucminf")),
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
  link <- if (is.null(spec$link)) "logit" else spec$link
  fit_once <- function() {
    elapsed <- system.time(m <- clmm(form, data = data, link = link))[["elapsed"]]
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
  vc <- VarCorr(m)
  cov <- lapply(names(vc), function(g) {
    mat <- unclass(vc[[g]])
    attributes(mat) <- list(dim = c(1L, 1L))
    list(group = g, names = I("(Intercept)"), matrix = mat)
  })
  result <- c(result, list(
    seconds = I(seconds),
    fe = as.list(coef(m)),
    cov = cov,
    residual_var = 1,
    llf = as.numeric(logLik(m)),
    n_evals = as.integer(m$neval),
    inner_iter = as.integer(m$Niter),
    max_grad = max(abs(m$gradient)),
    messages = I(character(0))
  ))
}

writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, null = "null"), spec$out)
