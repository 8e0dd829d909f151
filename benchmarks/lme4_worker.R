# lme4 side of benchmarks/run_benchmarks.py (run by it, not by hand).
#
# Usage: Rscript benchmarks/lme4_worker.R SPEC.json
#
# SPEC.json (written by run_benchmarks.py) holds:
#   mode      "time" (warm-up fit, then `repeats` timed fits) or "baseline"
#             (load the packages and the data, fit nothing)
#   data      path of the CSV (gzip allowed) that the Python tools read too
#   factors   columns converted with factor() after reading
#   formula   the lme4 formula
#   reml      TRUE for REML, FALSE for ML
#   repeats   number of timed fits
#   out       where to write the result JSON
#
# Timing is `system.time(lmer(...))[["elapsed"]]` around lmer() only, with the
# default lmerControl(); reading the CSV and building factors are excluded.
# Between fits the previous model is removed and gc() runs, so the peak memory
# of this process is that of one fit plus the data.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript lme4_worker.R SPEC.json")
spec <- fromJSON(args[[1]], simplifyVector = TRUE)

data <- read.csv(spec$data)
for (v in spec$factors) data[[v]] <- factor(data[[v]])

versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  Matrix = as.character(packageVersion("Matrix")),
  blas = unname(extSoftVersion()[["BLAS"]]),
  lapack = La_library()
)

result <- list(status = "ok", mode = spec$mode, versions = versions, nrow = nrow(data))

if (identical(spec$mode, "time")) {
  form <- as.formula(spec$formula)
  fit_once <- function() {
    elapsed <- system.time(m <- lmer(form, data = data, REML = spec$reml))[["elapsed"]]
    list(model = m, seconds = unname(elapsed))
  }
  warm <- fit_once()  # warm-up: lazy loading, byte compilation, first allocations
  rm(warm)
  invisible(gc())
  seconds <- numeric(0)
  m <- NULL
  for (i in seq_len(spec$repeats)) {
    m <- NULL
    invisible(gc())
    f <- fit_once()
    seconds <- c(seconds, f$seconds)
    m <- f$model
    rm(f)
  }
  vc <- VarCorr(m)
  cov <- lapply(names(vc), function(g) {
    mat <- unclass(vc[[g]])
    attributes(mat) <- list(dim = dim(mat))
    list(group = g, names = I(colnames(vc[[g]])), matrix = mat)
  })
  conv <- m@optinfo$conv$lme4$messages
  result <- c(result, list(
    seconds = I(seconds),
    n_evals = m@optinfo$feval,
    fe = as.list(fixef(m)),
    cov = cov,
    residual_var = sigma(m)^2,
    llf = as.numeric(logLik(m)),
    theta = I(unname(getME(m, "theta"))),
    messages = I(if (is.null(conv)) character(0) else as.character(conv)),
    optimizer_message = as.character(m@optinfo$message)
  ))
}

writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, null = "null"), spec$out)
