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
#   reml      TRUE for REML, FALSE for ML (linear mixed models only)
#   family    null for a linear mixed model (lmer); else the GLMM family name
#             ("binomial"), fitted with glmer
#   link      GLMM link ("logit")
#   nagq      GLMM nAGQ (0 or 1)
#   repeats   number of timed fits
#   bootstrap 0, or n > 0: the model is fitted once, untimed, and the timed call is
#             bootMer(m, FUN = function(x) c(fixef(x), getME(x, "theta")), nsim = n)
#             (lme4's parametric bootstrap, default use.u = FALSE); the warm-up call
#             is a bootMer of 20 refits; the fit's results are reported
#   progress  optional file to which each finished fit appends "label seconds"
#             (warm-up, fit1, ...), read by the runner when it kills a worker
#             that ran past its timeout
#   out       where to write the result JSON
#
# Timing is `system.time(lmer(...))[["elapsed"]]` (or glmer(...)) around the
# fitting call only, with the default lmerControl() / glmerControl(); reading
# the CSV and building factors are excluded.  Between fits the previous model is
# removed and gc() runs, so the peak memory of this process is that of one fit
# plus the data.
#
# GLMM objective evaluations: glmer() optimizes in two stages (stage 1: theta
# with the fixed effects from PIRLS, nAGQ = 0, optimizer
# glmerControl()$optimizer[[1]]; stage 2: theta and beta on the Laplace
# deviance, optimizer [[2]]), and m@optinfo$feval counts only the last stage it
# ran.  For nAGQ > 0 the stage-1 count is obtained once, before the timed fits
# and untimed, by repeating glmer()'s stage 1 with lme4's own modular functions
# (glFormula, mkGlmerDevfun, optimizeGlmer) and the same default control; it is
# deterministic, so it is the count of every timed fit's stage 1.
#
# For nAGQ = 0 the worker also reports, untimed, the Laplace log-likelihood at
# lme4's estimates (glmer(..., nAGQ = 1, devFunOnly = TRUE) at theta and fixef),
# which is what interlace reports for an nAGQ = 0 fit.

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

is_glmm <- !is.null(spec$family)

# One line per finished fit in the progress file, if the spec names one.
note_progress <- function(label, seconds) {
  if (!is.null(spec$progress) && nzchar(spec$progress)) {
    cat(sprintf("%s %.6g\n", label, seconds), file = spec$progress, append = TRUE)
  }
}

# glmer()'s stage 1 alone (see the header), returning its number of deviance evaluations.
glmer_stage1_evals <- function(form, fam) {
  ctrl <- glmerControl()
  if (!isTRUE(ctrl$nAGQ0initStep)) return(0L)
  glmod <- glFormula(form, data = data, family = fam)
  glmod$formula <- NULL
  devfun <- do.call(mkGlmerDevfun, c(glmod, list(control = ctrl, nAGQ = 0L)))
  opt <- optimizeGlmer(devfun, optimizer = ctrl$optimizer[[1]], restart_edge = FALSE,
                       boundary.tol = 0, control = ctrl$optCtrl, nAGQ = 0L, calc.derivs = FALSE)
  as.integer(opt$feval)
}

if (identical(spec$mode, "time")) {
  form <- as.formula(spec$formula)
  if (is_glmm) {
    fam <- get(spec$family, mode = "function")(link = spec$link)
    nagq <- as.integer(spec$nagq)
    stage1 <- if (nagq > 0L) glmer_stage1_evals(form, fam) else NA_integer_
    invisible(gc())
    fit_once <- function() {
      elapsed <- system.time(m <- glmer(form, data = data, family = fam, nAGQ = nagq))[["elapsed"]]
      list(model = m, seconds = unname(elapsed))
    }
  } else {
    fit_once <- function() {
      elapsed <- system.time(m <- lmer(form, data = data, REML = spec$reml))[["elapsed"]]
      list(model = m, seconds = unname(elapsed))
    }
  }
  n_boot <- if (is.null(spec$bootstrap)) 0L else as.integer(spec$bootstrap)
  if (n_boot > 0L) {
    fitted <- fit_once()$model
    boot_stat <- function(x) c(fixef(x), getME(x, "theta"))
    boot_size <- 20L  # the warm-up call
    fit_once <- function() {
      nsim <- boot_size
      boot_size <<- n_boot
      elapsed <- system.time(b <- bootMer(fitted, FUN = boot_stat, nsim = nsim, seed = 1L))[["elapsed"]]
      list(model = fitted, seconds = unname(elapsed), boot = b)
    }
  }
  warm <- fit_once()  # warm-up: lazy loading, byte compilation, first allocations
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
    if (n_boot > 0L) result$bootstrap_n <- nrow(f$boot$t)
    rm(f)
  }
  vc <- VarCorr(m)
  cov <- lapply(names(vc), function(g) {
    mat <- unclass(vc[[g]])
    attributes(mat) <- list(dim = dim(mat))
    list(group = g, names = I(colnames(vc[[g]])), matrix = mat)
  })
  conv <- m@optinfo$conv$lme4$messages
  evals <- list(n_evals = m@optinfo$feval)
  if (is_glmm) {
    # nAGQ = 0: the fit is stage 1 only, and feval counts it
    evals <- if (nagq > 0L) {
      list(n_evals = stage1 + m@optinfo$feval, stage1_evals = stage1, stage2_evals = m@optinfo$feval)
    } else {
      list(n_evals = m@optinfo$feval, stage1_evals = m@optinfo$feval)
    }
    evals$optimizers <- I(glmerControl()$optimizer[if (nagq > 0L) 1:2 else 1L])
  }
  result <- c(result, evals, list(
    seconds = I(seconds),
    fe = as.list(fixef(m)),
    cov = cov,
    residual_var = sigma(m)^2,
    llf = as.numeric(logLik(m)),
    theta = I(unname(getME(m, "theta"))),
    theta_names = I(names(getME(m, "theta"))),
    messages = I(if (is.null(conv)) character(0) else as.character(conv)),
    optimizer_message = as.character(m@optinfo$message)
  ))
  if (is_glmm && nagq == 0L) {
    # lme4's logLik of an nAGQ = 0 fit is not the Laplace log-likelihood at its own
    # estimates; that one (what interlace reports) is computed here, after the timing.
    est <- c(getME(m, "theta"), fixef(m))
    rm(m)
    invisible(gc())
    laplace <- glmer(form, data = data, family = fam, nAGQ = 1L, devFunOnly = TRUE)
    result$llf_laplace_at_estimate <- -0.5 * laplace(unname(est))
  }
}

writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, null = "null"), spec$out)
