#!/usr/bin/env Rscript
## make_confint_reference.R -- lme4 confidence intervals for the interlace LMM test-suite.
##
## Generated with: R 4.2.2 Patched (2022-11-10 r83330), lme4 1.1-31, jsonlite 1.8.4
## (Debian packages).  Other versions may give slightly different profiles.
##
## Run from the repository root (takes a few minutes):
##     Rscript interlace/tests/reference/make_confint_reference.R
##
## It (re)writes interlace/tests/reference/confint/<case>.json, one file per case:
##   sleepstudy_reml, sleepstudy_ml   Reaction ~ Days + (Days | Subject)
##   dyestuff_reml                    Yield ~ 1 + (1 | Batch)        (Dyestuff)
##   dyestuff2_reml                   Yield ~ 1 + (1 | Batch)        (Dyestuff2: singular fit)
##   penicillin_reml                  diameter ~ 1 + (1 | plate) + (1 | sample)   (crossed)
##   pastes_reml                      strength ~ 1 + (1 | batch/cask)             (nested)
##   weights_reml                     y ~ x + (1 | g), weights = w   (simulated, reference/data/weights.csv)
##   offset_reml                      y ~ x + (1 | g), offset = off  (simulated, reference/data/offset.csv)
##   factor_slope_reml                y ~ f + (0 + f | g)  (3 x 3 unstructured: the order of SDs and
##                                    correlations; simulated, reference/data/factor_slope.csv; no bootstrap)
## The real datasets are fitted as the lme4 objects themselves (identical to
## interlace/datasets/data/*.csv, which make_lmer_reference.R checks); the simulated
## ones are read from the CSVs that make_lmer_reference.R wrote.
##
## Fields (jsonlite::write_json, digits = NA; NA and +-Inf written as null):
##   names$old / names$new     row names of confint(m) with oldNames = TRUE (".sig01",
##                             ..., ".sigma", fixed effects) and oldNames = FALSE
##                             ("sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", ...)
##   profile                   confint(m, method = "profile") (level 0.95) of the fit
##                             with TIGHT optimizer settings (nloptwrap, xtol/ftol 1e-12/1e-14);
##                             lme4 passes the fit's optimizer control to profile(), so
##                             the profile's optimizations are tight too.  lme4 profiles
##                             the ML deviance (devfun2 calls refitML) also for REML fits.
##   profile_warnings          warnings confint() gave for the profile (e.g. lme4's fallback to
##                             linear interpolation)
##   fixed_exact               for each fixed effect, the exact 95% profile limits without a grid
##                             or spline: the roots of sign(b - b_ML) sqrt(dev(b) - dev_ML) = -+1.96
##                             (uniroot, tol 1e-10), dev(b) the ML deviance of lmer() refits with
##                             X_j b moved into the offset (tight control).  lme4 1.1-31's
##                             profile of a fixed effect is wrong for a model with prior
##                             weights (its refits drop the log-weight term, so zeta jumps
##                             to about +-7 at the first step and confint falls back to linear
##                             interpolation between those points); these roots are the check there.
##   profile_default           the same from a default lmer() fit (lme4's default
##                             control): the difference shows lme4's own optimizer noise
##   profile_table             the profile points of the tight fit (as.data.frame(profile)):
##                             .par, .zeta, value of the profiled parameter, and every
##                             parameter column (sd/cor on the standard-deviation scale)
##   ml                        the ML estimates at the profile's centre (sdcor, sigma,
##                             fixed effects) and the ML deviance there
##   wald                      confint(m, method = "Wald") (null rows for sd/cor/sigma)
##   boot                      confint(m, method = "boot", nsim = 500, seed = 20240701)
##                             (percentile, lme4's default boot.type), plus the SDs and
##                             means of the bootstrap replicates, from bootMer with the
##                             same FUN and seed (checked to give the same intervals)
##   fit                       fixef, SEs (sqrt(diag(vcov))) of the default fit
##   seconds                   wall time of profile() and of the bootstrap here

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

if (!file.exists("interlace/tests/reference/make_confint_reference.R"))
  stop("run this script from the repository root")

out_dir <- "interlace/tests/reference/confint"
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

vec <- function(x) I(unname(as.vector(x)))
num <- function(x) { x <- unname(as.vector(x)); x[!is.finite(x)] <- NA; I(x) }

ctrl_tight <- lmerControl(optimizer = "nloptwrap",
                          optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14,
                                         xtol_rel = 1e-12, maxeval = 100000))
boot_seed <- 20240701
boot_nsim <- 500

cases <- list(
  list(case = "sleepstudy_reml", formula = Reaction ~ Days + (Days | Subject), data = sleepstudy,
       reml = TRUE, csv = "interlace/datasets/data/sleepstudy.csv",
       py_formula = "Reaction ~ Days", py_random = "(Days | Subject)"),
  list(case = "sleepstudy_ml", formula = Reaction ~ Days + (Days | Subject), data = sleepstudy,
       reml = FALSE, csv = "interlace/datasets/data/sleepstudy.csv",
       py_formula = "Reaction ~ Days", py_random = "(Days | Subject)"),
  list(case = "dyestuff_reml", formula = Yield ~ 1 + (1 | Batch), data = Dyestuff,
       reml = TRUE, csv = "interlace/datasets/data/dyestuff.csv",
       py_formula = "Yield ~ 1", py_random = "(1 | Batch)"),
  list(case = "dyestuff2_reml", formula = Yield ~ 1 + (1 | Batch), data = Dyestuff2,
       reml = TRUE, csv = "interlace/datasets/data/dyestuff2.csv",
       py_formula = "Yield ~ 1", py_random = "(1 | Batch)"),
  list(case = "penicillin_reml", formula = diameter ~ 1 + (1 | plate) + (1 | sample), data = Penicillin,
       reml = TRUE, csv = "interlace/datasets/data/penicillin.csv",
       py_formula = "diameter ~ 1", py_random = c("(1 | plate)", "(1 | sample)")),
  list(case = "pastes_reml", formula = strength ~ 1 + (1 | batch / cask), data = Pastes,
       reml = TRUE, csv = "interlace/datasets/data/pastes.csv",
       py_formula = "strength ~ 1", py_random = "(1 | batch/cask)"),
  list(case = "weights_reml", formula = y ~ x + (1 | g), reml = TRUE,
       csv = "interlace/tests/reference/data/weights.csv", weights = "w",
       py_formula = "y ~ x", py_random = "(1 | g)"),
  list(case = "offset_reml", formula = y ~ x + (1 | g), reml = TRUE,
       csv = "interlace/tests/reference/data/offset.csv", offset = "off",
       py_formula = "y ~ x", py_random = "(1 | g)"),
  list(case = "factor_slope_reml", formula = y ~ f + (0 + f | g), reml = TRUE,
       csv = "interlace/tests/reference/data/factor_slope.csv", boot = FALSE,
       py_formula = "y ~ f", py_random = "(0 + f | g)")
)

## exact profile limits of the fixed effects (no grid, no spline): refits with X_j b in the offset
fixed_exact <- function(m, dat, cs) {
  mml <- if (isREML(m)) refitML(m) else m
  dev0 <- deviance(mml)
  X <- getME(mml, "X")
  y <- getME(mml, "y")
  off <- if (is.null(cs$offset)) 0 else dat[[cs$offset]]
  w <- if (is.null(cs$weights)) NULL else dat[[cs$weights]]
  bars <- paste0("(", vapply(findbars(cs$formula), function(b) paste(deparse(b), collapse = ""), ""), ")")
  est <- fixef(mml)
  se <- sqrt(diag(as.matrix(vcov(mml))))
  out <- matrix(NA_real_, length(est), 2)
  for (j in seq_along(est)) {
    d2 <- dat
    d2$.y <- y
    keep <- X[, -j, drop = FALSE]
    rhs <- if (ncol(keep)) "0 + .X" else "0"
    if (ncol(keep)) d2$.X <- keep
    f <- as.formula(paste(".y ~", rhs, "+", paste(bars, collapse = " + "), "+ offset(.off)"))
    zeta <- function(b) {
      d2$.off <- X[, j] * b + off
      mb <- suppressMessages(lmer(f, data = d2, REML = FALSE, weights = w, control = ctrl_tight))
      sign(b - est[j]) * sqrt(max(deviance(mb) - dev0, 0))
    }
    z <- qnorm(0.975)
    out[j, 1] <- uniroot(function(b) zeta(b) + z, c(est[j] - 4 * se[j], est[j]), tol = 1e-10)$root
    out[j, 2] <- uniroot(function(b) zeta(b) - z, c(est[j], est[j] + 4 * se[j]), tol = 1e-10)$root
  }
  list(rows = vec(names(est)), lower = vec(out[, 1]), upper = vec(out[, 2]))
}

ci_list <- function(ci) list(rows = vec(rownames(ci)), lower = num(ci[, 1]), upper = num(ci[, 2]))

for (cs in cases) {
  cat("==", cs$case, "\n")
  dat <- if (is.null(cs$data)) read.csv(cs$csv, stringsAsFactors = TRUE, na.strings = "") else cs$data
  fit <- function(control) {
    wsym <- if (is.null(cs$weights)) NULL else as.name(cs$weights)
    osym <- if (is.null(cs$offset)) NULL else as.name(cs$offset)
    cl <- bquote(lmer(.(cs$formula), data = dat, REML = .(cs$reml), weights = .(wsym),
                      offset = .(osym), control = .(control)))
    suppressMessages(eval(cl))
  }
  m_tight <- fit(ctrl_tight)
  m_def <- fit(lmerControl())

  names_old <- rownames(confint(m_def, method = "Wald", oldNames = TRUE))
  names_new <- rownames(confint(m_def, method = "Wald", oldNames = FALSE))

  t0 <- proc.time()[["elapsed"]]
  pr <- suppressWarnings(suppressMessages(profile(m_tight, signames = TRUE)))
  t_prof <- proc.time()[["elapsed"]] - t0
  prof_warn <- character()
  ci_prof <- withCallingHandlers(confint(pr, level = 0.95), warning = function(w) {
    prof_warn <<- c(prof_warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  ci_prof_def <- suppressWarnings(suppressMessages(confint(m_def, method = "profile", oldNames = TRUE)))
  stopifnot(identical(rownames(ci_prof), names_old))

  pdf <- as.data.frame(pr)
  pcols <- setdiff(names(pdf), c(".zeta", ".par", ".focal"))
  table_out <- list(par = vec(as.character(pdf$.par)), zeta = vec(pdf$.zeta),
                    value = vec(vapply(seq_len(nrow(pdf)), function(i) pdf[i, as.character(pdf$.par[i])], 0)),
                    columns = setNames(lapply(pcols, function(cn) vec(pdf[[cn]])), pcols))

  dd <- lme4:::devfun2(m_tight)
  ml_opt <- attr(dd, "optimum")

  ci_wald <- confint(m_def, method = "Wald", oldNames = TRUE)

  ## lme4's confint(method = "boot") statistic: SDs/correlations, sigma, fixed effects
  bootFun <- function(x) {
    ss <- lme4:::Cv_to_Sv(x@theta, n = lengths(x@cnms), s = sigma(x))
    c(setNames(ss, names_old[seq_along(ss)]), fixef(x))
  }
  boot_out <- NULL
  t_boot <- NA
  if (!isFALSE(cs$boot)) {
    t0 <- proc.time()[["elapsed"]]
    ci_boot <- suppressWarnings(suppressMessages(
      confint(m_def, method = "boot", nsim = boot_nsim, seed = boot_seed, oldNames = TRUE)))
    t_boot <- proc.time()[["elapsed"]] - t0
    ## the same bootstrap through bootMer with the same statistic, to get the replicates' SDs
    bb <- suppressWarnings(suppressMessages(bootMer(m_def, FUN = bootFun, nsim = boot_nsim, seed = boot_seed)))
    ci_bb <- confint(bb, level = 0.95, type = "perc")
    stopifnot(isTRUE(all.equal(unname(ci_bb), unname(ci_boot[rownames(ci_bb), ]))))
    n_failed <- sum(apply(is.na(bb$t), 1, any))
    boot_out <- c(ci_list(ci_boot),
                  list(nsim = boot_nsim, seed = boot_seed, type = "perc",
                       sd = vec(apply(bb$t, 2, sd, na.rm = TRUE)),
                       mean = vec(colMeans(bb$t, na.rm = TRUE)),
                       t0 = vec(bb$t0), n_failed = n_failed))
  }
  out <- list(
    case = cs$case,
    r_call = paste0("lmer(", paste(deparse(cs$formula, width.cutoff = 500L), collapse = " "),
                    ", REML = ", cs$reml,
                    if (!is.null(cs$weights)) paste0(", weights = ", cs$weights) else "",
                    if (!is.null(cs$offset)) paste0(", offset = ", cs$offset) else "", ")"),
    data = cs$csv,
    python = list(formula = cs$py_formula, random = vec(cs$py_random),
                  method = if (cs$reml) "REML" else "ML",
                  weights = if (is.null(cs$weights)) NA else cs$weights,
                  offset = if (is.null(cs$offset)) NA else cs$offset),
    reml = cs$reml,
    is_singular = isSingular(m_def),
    names = list(old = vec(names_old), new = vec(names_new)),
    level = 0.95,
    profile = ci_list(ci_prof),
    profile_warnings = vec(prof_warn),
    fixed_exact = fixed_exact(m_tight, dat, cs),
    profile_default = ci_list(ci_prof_def),
    profile_table = table_out,
    ml = list(names = vec(names(ml_opt)), values = vec(ml_opt), deviance = attr(dd, "basedev")),
    wald = ci_list(ci_wald),
    boot = boot_out,
    fit = list(fixef = vec(fixef(m_def)), se = vec(sqrt(diag(as.matrix(vcov(m_def))))),
               sdcor = vec(bootFun(m_def)[seq_len(length(names_old) - length(fixef(m_def)))])),
    seconds = list(profile = t_prof, boot = t_boot)
  )
  write_json(out, file.path(out_dir, paste0(cs$case, ".json")),
             digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
  print(cbind(ci_prof, default = ci_prof_def), digits = 8)
  cat(sprintf("  profile %.2fs, boot(%d) %s\n", t_prof, boot_nsim, format(t_boot)))
}
