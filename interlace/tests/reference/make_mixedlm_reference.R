#!/usr/bin/env Rscript
## make_mixedlm_reference.R -- lme4 references for the MixedLM drop-in (interlace.api).
##
## Generated with: R 4.2.2, lme4 1.1-31, nloptr, jsonlite (Debian packages).
## Run from the repository root, after make_mixedlm_data.py:
##     python3 interlace/tests/reference/make_mixedlm_data.py
##     Rscript interlace/tests/reference/make_mixedlm_reference.R
##
## It writes interlace/tests/reference/mixedlm/<case>.json:
##   singular_reml      statsmodels' test_singular data: lmer(Y ~ X + (1 | class)), REML
##   independent_reml   statsmodels' test_vcomp_1 data: lmer(y ~ 0 + x + (0 + z1 + z2 || g)),
##   independent_ml     the model MixedLM fits with free= a diagonal pattern (REML and ML)
##   crossed_reml       the crossed idiom's model, lmer(y ~ x + (1 | a) + (1 | b)), REML
##   profile_*          profiles as MixedLM's profile_re computes them (see below)
##
## Every fit uses a tight optimizer control (nloptwrap with xtol/ftol 1e-12), so the
## values are lme4's optimum and not where its default stopping rule leaves it.
##
## Profiles (MixedLM's profile_re): the relative variance (variance / scale) of one
## random effect is held at each value of a grid and lme4's criterion minimized over
## the other θ (nloptr's BOBYQA, xtol_rel 1e-12), then the model is evaluated there
## (lmer with optimizer = NULL at that θ) for σ² and logLik.  The grid is MixedLM's:
## from (v - dist_low) / σ² to v / σ² in num_low steps, then to (v + dist_high) / σ²
## in num_high steps, v and σ² lme4's estimates.  Each row is [x σ²(θ), logLik(θ)].
## A variance held is the first column's (θ_1 = √x) of its term, as in MixedLM, which
## permutes the columns of exog_re to put the profiled one first.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(nloptr)
})
if (!file.exists("interlace/tests/reference/make_mixedlm_reference.R"))
  stop("run this script from the repository root")
source("interlace/tests/reference/reference_helpers.R")

data_dir <- "interlace/tests/reference/data"
out_dir <- "interlace/tests/reference/mixedlm"
dir.create(out_dir, showWarnings = FALSE)

ctl <- lmerControl(optimizer = "nloptwrap",
                   optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, maxeval = 100000))

fit_json <- function(m) {
  list(
    fixef = list(names = vec(names(fixef(m))), values = vec(fixef(m))),
    se = vec(sqrt(diag(as.matrix(vcov(m))))),
    theta = vec(getME(m, "theta")),
    theta_names = vec(names(getME(m, "theta"))),
    sigma2 = sigma(m)^2,
    loglik = as.numeric(logLik(m)),
    reml = isREML(m),
    varcorr = varcorr_json(m),
    ranef = ranef_json(m),
    fitted = vec(fitted(m))
  )
}

write_case <- function(name, value) {
  write_json(value, file.path(out_dir, paste0(name, ".json")), digits = NA, auto_unbox = TRUE, pretty = TRUE)
}

## ---------------------------------------------------------------- fits
sing <- read.csv(file.path(data_dir, "mixedlm_singular.csv"))
sing$class <- factor(sing$class)
m <- lmer(Y ~ X + (1 | class), sing, REML = TRUE, control = ctl)
write_case("singular_reml", c(list(data = "interlace/tests/reference/data/mixedlm_singular.csv",
                                   call = "lmer(Y ~ X + (1 | class), REML = TRUE)"), fit_json(m)))

ind <- read.csv(file.path(data_dir, "mixedlm_independent.csv"))
ind$g <- factor(ind$g)
for (reml in c(TRUE, FALSE)) {
  m <- lmer(y ~ 0 + x + (0 + z1 + z2 || g), ind, REML = reml, control = ctl)
  write_case(if (reml) "independent_reml" else "independent_ml",
             c(list(data = "interlace/tests/reference/data/mixedlm_independent.csv",
                    call = sprintf("lmer(y ~ 0 + x + (0 + z1 + z2 || g), REML = %s)", reml)), fit_json(m)))
}

cr <- read.csv(file.path(data_dir, "mixedlm_crossed.csv"))
cr$a <- factor(cr$a)
cr$b <- factor(cr$b)
m <- lmer(y ~ x + (1 | a) + (1 | b), cr, REML = TRUE, control = ctl)
write_case("crossed_reml", c(list(data = "interlace/tests/reference/data/mixedlm_crossed.csv",
                                  call = "lmer(y ~ x + (1 | a) + (1 | b), REML = TRUE)"), fit_json(m)))

## ---------------------------------------------------------------- profiles
## `held`: index of the θ held at √x; `var`: the profiled variance of lme4's fit
profile_rows <- function(formula, data, reml, held, var, dist_low, num_low, dist_high, num_high) {
  fit <- lmer(formula, data, REML = reml, control = ctl)
  theta_hat <- getME(fit, "theta")
  lower <- getME(fit, "lower")
  scale <- sigma(fit)^2
  ru0 <- var / scale
  low <- (var - dist_low) / scale
  high <- (var + dist_high) / scale
  xs <- c(seq(low, ru0, length.out = num_low + 1), seq(ru0, high, length.out = num_high + 1)[-1])
  dev <- lmer(formula, data, REML = reml, devFunOnly = TRUE)
  rows <- lapply(xs, function(x) {
    th <- theta_hat
    th[held] <- sqrt(x)
    free <- setdiff(seq_along(th), held)
    if (length(free)) {
      f <- function(p) { t <- th; t[free] <- p; dev(t) }
      o <- nloptr(th[free], f, lb = lower[free],
                  opts = list(algorithm = "NLOPT_LN_BOBYQA", xtol_rel = 1e-12, ftol_abs = 1e-14, maxeval = 100000))
      th[free] <- o$solution
    }
    at <- lmer(formula, data, REML = reml, start = list(theta = th), control = lmerControl(optimizer = NULL))
    c(x * sigma(at)^2, as.numeric(logLik(at)))
  })
  list(grid = vec(xs), rows = lapply(rows, vec), estimate = var, scale = scale, theta = vec(theta_hat))
}

vc_of <- function(m, grp, var1) {
  vc <- as.data.frame(VarCorr(m))
  vc$vcov[vc$grp == grp & vc$var1 == var1 & is.na(vc$var2)]
}

sleep <- lme4::sleepstudy
sleep$one <- 1
m <- lmer(Reaction ~ Days + (Days | Subject), sleep, REML = TRUE, control = ctl)
write_case("profile_sleepstudy_intercept", c(
  list(call = "profile_re(0, 're', num_low=3, dist_low=300, num_high=3, dist_high=300) of (Days | Subject), REML",
       re_ix = 0, vtype = "re", num_low = 3, dist_low = 300, num_high = 3, dist_high = 300),
  profile_rows(Reaction ~ Days + (Days | Subject), sleep, TRUE, 1, vc_of(m, "Subject", "(Intercept)"),
               300, 3, 300, 3)))
## the slope's variance: MixedLM puts the profiled column first, lme4's (0 + Days + one | Subject)
write_case("profile_sleepstudy_slope", c(
  list(call = "profile_re(1, 're', num_low=2, dist_low=20, num_high=2, dist_high=30) of (Days | Subject), REML",
       re_ix = 1, vtype = "re", num_low = 2, dist_low = 20, num_high = 2, dist_high = 30),
  profile_rows(Reaction ~ Days + (0 + Days + one | Subject), sleep, TRUE, 1, vc_of(m, "Subject", "Days"),
               20, 2, 30, 2)))

pastes <- lme4::Pastes
m <- lmer(strength ~ (1 | batch) + (1 | batch:cask), pastes, REML = TRUE, control = ctl)
## θ of lme4: (batch:cask, batch) -- the term with more levels first
write_case("profile_pastes_cask", c(
  list(call = paste("profile_re('cask', 'vc', num_low=2, dist_low=5, num_high=2, dist_high=5) of",
                    "groups='batch', re_formula='1', vc_formula={'cask': '0 + C(cask)'}, REML"),
       re_ix = "cask", vtype = "vc", num_low = 2, dist_low = 5, num_high = 2, dist_high = 5),
  profile_rows(strength ~ (1 | batch) + (1 | batch:cask), pastes, TRUE, 1, vc_of(m, "batch:cask", "(Intercept)"),
               5, 2, 5, 2)))
write_case("profile_pastes_batch_ml", c(
  list(call = paste("profile_re(0, 're', num_low=2, dist_low=1, num_high=2, dist_high=2) of the same model, ML"),
       re_ix = 0, vtype = "re", num_low = 2, dist_low = 1, num_high = 2, dist_high = 2),
  profile_rows(strength ~ (1 | batch) + (1 | batch:cask), pastes, FALSE, 2,
               vc_of(lmer(strength ~ (1 | batch) + (1 | batch:cask), pastes, REML = FALSE, control = ctl),
                     "batch", "(Intercept)"), 1, 2, 2, 2)))
cat("wrote", length(list.files(out_dir, pattern = "json$")), "cases to", out_dir, "\n")
