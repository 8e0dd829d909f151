#!/usr/bin/env Rscript
## make_hostile_reference.R -- R's answers for the hostile-input and degenerate-design tests
## (interlace/tests/test_hostile_inputs.py, test_degenerate_designs.py).
##
## Generated with R 4.2.2, lme4 1.1-31, glmmTMB, jsonlite (Debian packages).
## Run from the repository root:
##     Rscript interlace/tests/reference/make_hostile_reference.R
##
## It (re)writes
##   interlace/tests/reference/data/poisson_1e12.csv   simulated counts near 1e12 (set.seed)
##   interlace/tests/reference/hostile/<case>.json     one JSON of reference values per case
##
## Cases (sleepstudy is lme4's, as in interlace/datasets/data/sleepstudy.csv):
##   zero_weights_limit  lmer with prior weights 1e-10 on rows 1-5 (and 1 elsewhere): the
##                       limit of a zero weight.  lme4 itself, given weights of exactly 0,
##                       returns REML criterion Inf and stops at its start ("Gradient
##                       contains NAs"); interlace minimizes without those rows' Σ log w.
##   poly2               lmer(Reaction ~ poly(Days, 2) + (1 | Subject)), with predictions of
##                       the fixed part at Days = 4.5 and 12 (predict(re.form = NA)).
##   offset_term         lmer(Reaction ~ Days + offset(Days) + (1 | Subject)).
##   logical_response    lmer(I(Reaction > 300) ~ Days + (1 | Subject)): a logical response
##                       is used as 0/1.
##   poisson_1e12        counts near 1e12: lme4's glmer stops with "(maxstephalfit) PIRLS
##                       step-halvings failed to reduce deviance"; the reference is
##                       glmmTMB's Laplace fit (same likelihood), run with tight tolerances.
suppressMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})
source("interlace/tests/reference/reference_helpers.R")

out_dir <- "interlace/tests/reference/hostile"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
save <- function(x, case) write_json(x, file.path(out_dir, paste0(case, ".json")), digits = NA,
                                     auto_unbox = TRUE, pretty = TRUE)
lmm_json <- function(m, call) {
  list(call = call, fixef = as.list(fixef(m)), se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       theta = vec(getME(m, "theta")), sigma = sigma(m), reml_criterion = REMLcrit(m))
}
ss <- sleepstudy

## zero weights: their limit
w <- rep(1, nrow(ss)); w[1:5] <- 1e-10
m <- lmer(Reaction ~ Days + (1 | Subject), ss, weights = w)
save(c(lmm_json(m, "lmer(Reaction ~ Days + (1 | Subject), sleepstudy, weights = w), w[1:5] = 1e-10"),
       list(zero_rows = vec(1:5))), "zero_weights_limit")

## poly(Days, 2)
m <- lmer(Reaction ~ poly(Days, 2) + (1 | Subject), ss)
nd <- data.frame(Days = c(4.5, 12))
save(c(lmm_json(m, "lmer(Reaction ~ poly(Days, 2) + (1 | Subject), sleepstudy)"),
       list(new_days = vec(nd$Days), predict_fixed = vec(predict(m, newdata = nd, re.form = NA)))), "poly2")

## offset() term in the formula
m <- lmer(Reaction ~ Days + offset(Days) + (1 | Subject), ss)
save(lmm_json(m, "lmer(Reaction ~ Days + offset(Days) + (1 | Subject), sleepstudy)"), "offset_term")

## logical response
m <- lmer(I(Reaction > 300) ~ Days + (1 | Subject), ss)
save(lmm_json(m, "lmer(I(Reaction > 300) ~ Days + (1 | Subject), sleepstudy)"), "logical_response")

## Poisson counts near 1e12
set.seed(19)
g <- rep(1:20, each = 10)
x <- r6(rnorm(200))
b <- rnorm(20, 0, 0.5)
y <- rpois(200, exp(log(1e12) + 0.3 * x + b[g]))
dat <- data.frame(y = y, x = x, g = lab("g", g, 2))
path <- "interlace/tests/reference/data/poisson_1e12.csv"
write_csv_plain(dat, path)
dat <- read_csv_plain(path)
fit_lme4 <- tryCatch(glmer(y ~ x + (1 | g), dat, family = poisson), error = function(e) conditionMessage(e))
m <- glmmTMB(y ~ x + (1 | g), dat, family = poisson,
             control = glmmTMBControl(optCtrl = list(iter.max = 1000, eval.max = 2000, rel.tol = 1e-14)))
save(list(call = "glmmTMB(y ~ x + (1 | g), family = poisson), rel.tol = 1e-14",
          lme4_glmer = if (is.character(fit_lme4)) fit_lme4 else "fitted",
          fixef = as.list(fixef(m)$cond), theta = vec(sqrt(VarCorr(m)$cond$g[1])),
          loglik = as.numeric(logLik(m))), "poisson_1e12")
