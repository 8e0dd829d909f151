#!/usr/bin/env Rscript
## make_survival_reference.R -- survival::coxph references for interlace.coxph (Cox models
## without random effects: strata, counting-process data, weights, robust cluster SEs, the
## summary's tests and concordance, predictions, residuals, survival curves) and for the
## fixed-part survival curves of a coxme fit.
##
## Generated with: R 4.2.2 Patched (2022-11-10 r83330), survival 3.5-3 (Debian's r-cran-survival),
## coxme 2.2-22 and bdsmatrix 1.3-7 (built from CRAN sources into /work/shared/r-lib; only the
## last case needs them), jsonlite 1.8.4.
##
## Run from the repository root:
##     R_LIBS=/work/shared/r-lib Rscript interlace/tests/reference/make_survival_reference.R
##
## It reads the data of the copied coxme cases (reference/coxme/<case>/data.csv) and writes
## interlace/tests/reference/survival/<case>.json.  Every fit uses coxph's defaults (ties as
## stated, eps = 1e-9); the weighted case uses w = 1 + (row %% 3) / 2 (row = 1, 2, ...).
##
## JSON fields: r_call, python_call, packages; coef, var (what coxph reports: robust when
## robust), naive_var (model-based; equal to var when not robust), robust, loglik, score,
## rscore, wald_test, iter, n, nevent, means, concordance (concordant, discordant, tied.x,
## tied.y, tied.xy, concordance, std), aic, bic; linear_predictors, residuals (martingale,
## deviance, score, dfbeta) and predict (lp, risk, expected, survival with
## reference = "strata", lp with reference = "sample" and "zero") on the first 20 rows;
## newdata (three covariate patterns, with their times for type = "expected") and
## predict_new on it; survfit on newdata (time, n.risk, n.event, n.censor, and per
## pattern surv, cumhaz, std.err, lower, upper; strata = the number of times per curve)
## and, where given, survfit_default (the curve at the means, no newdata).

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

if (!file.exists("interlace/tests/reference/make_survival_reference.R"))
  stop("run this script from the repository root")
source("interlace/tests/reference/reference_helpers.R")

in_dir <- "interlace/tests/reference/coxme"
out_dir <- "interlace/tests/reference/survival"
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
packages <- list(R = R.version.string, survival = as.character(packageVersion("survival")))
mat <- function(x) { x <- as.matrix(x); dimnames(x) <- NULL; x }
first <- function(x, k = 20) if (is.matrix(x)) mat(x[seq_len(min(k, nrow(x))), , drop = FALSE]) else unname(x[seq_len(min(k, length(x)))])

curves <- function(sf, npat) {
  # survfit output as lists: one column per pattern (a matched-strata fit has one curve per row)
  m <- function(x) { x <- as.matrix(x); dimnames(x) <- NULL; lapply(seq_len(ncol(x)), function(j) vec(x[, j])) }
  out <- list(time = vec(sf$time), n_risk = vec(sf$n.risk), n_event = vec(sf$n.event),
              n_censor = vec(sf$n.censor), surv = m(sf$surv), cumhaz = m(sf$cumhaz),
              std_err = m(sf$std.err), lower = m(sf$lower), upper = m(sf$upper))
  if (!is.null(sf$strata)) out$strata <- as.list(sf$strata)
  out
}

summarise <- function(fit, data, newdata, r_call, python_call, default_curve = FALSE) {
  s <- summary(fit)
  robust <- !is.null(fit$naive.var)
  res <- list(
    case = NULL, r_call = r_call, python_call = python_call, packages = packages,
    coef = as.list(coef(fit)), var = mat(fit$var), naive_var = mat(if (robust) fit$naive.var else fit$var),
    robust = robust, loglik = vec(fit$loglik), score = unname(fit$score),
    rscore = if (robust) as.numeric(fit$rscore) else NULL, wald_test = as.numeric(fit$wald.test),
    iter = fit$iter, n = fit$n, nevent = fit$nevent, means = as.list(fit$means),
    concordance = as.list(fit$concordance), aic = AIC(fit), bic = BIC(fit),
    linear_predictors = first(fit$linear.predictors),
    residuals = list(martingale = first(residuals(fit, type = "martingale")),
                     deviance = first(residuals(fit, type = "deviance")),
                     score = first(residuals(fit, type = "score")),
                     dfbeta = first(residuals(fit, type = "dfbeta"))),
    predict = list(lp = first(predict(fit, type = "lp")), risk = first(predict(fit, type = "risk")),
                   expected = first(predict(fit, type = "expected")),
                   survival = first(predict(fit, type = "survival")),
                   lp_sample = first(predict(fit, type = "lp", reference = "sample")),
                   lp_zero = first(predict(fit, type = "lp", reference = "zero"))),
    newdata = newdata,
    predict_new = list(lp = vec(predict(fit, newdata, type = "lp")), risk = vec(predict(fit, newdata, type = "risk")),
                       expected = vec(predict(fit, newdata, type = "expected")),
                       survival = vec(predict(fit, newdata, type = "survival"))),
    survfit = curves(survfit(fit, newdata = newdata), nrow(newdata))
  )
  if (default_curve) res$survfit_default <- curves(survfit(fit), 1)
  res
}

write_case <- function(name, res) {
  res$case <- name
  write_json(res, file.path(out_dir, paste0(name, ".json")), digits = NA, auto_unbox = TRUE, pretty = TRUE,
             na = "null", null = "null")
}

## --------------------------------------------------------------------------- lung, Efron
lung <- read_csv_plain(file.path(in_dir, "lung_inst", "data.csv"))
nd <- data.frame(age = c(50, 60, 70), sex = c(1, 2, 1), time = c(200, 400, 600), status = c(1, 0, 1))
fit <- coxph(Surv(time, status) ~ age + sex, data = lung)
write_case("lung_efron", summarise(fit, lung, nd, "coxph(Surv(time, status) ~ age + sex, data = lung)",
                                   list(formula = "Surv(time, status) ~ age + sex", data = "lung_inst"),
                                   default_curve = TRUE))

## --------------------------------------------------------------------------- lung, Breslow, weights
lung$w <- 1 + (seq_len(nrow(lung)) %% 3) / 2
fit <- coxph(Surv(time, status) ~ age + sex, data = lung, weights = w, ties = "breslow")
write_case("lung_breslow_weighted",
           summarise(fit, lung, nd, "coxph(Surv(time, status) ~ age + sex, data = lung, weights = w, ties = 'breslow')",
                     list(formula = "Surv(time, status) ~ age + sex", data = "lung_inst", ties = "breslow",
                          weights = "1 + (row %% 3) / 2")))

## --------------------------------------------------------------------------- cgd: counting process, strata, cluster
cgd <- read_csv_plain(file.path(in_dir, "cgd_center_counting", "data.csv"))
ndc <- data.frame(treat = factor(c("placebo", "rIFN-g", "placebo"), levels = levels(cgd$treat)),
                  age = c(10, 20, 30), hos.cat = factor(c("US:NIH", "US:other", "Europe:other"), levels = levels(cgd$hos.cat)),
                  tstart = c(0, 100, 0), tstop = c(150, 300, 250), status = c(1, 0, 1))
fit <- coxph(Surv(tstart, tstop, status) ~ treat + age + strata(hos.cat) + cluster(id), data = cgd)
write_case("cgd_strata_cluster",
           summarise(fit, cgd, ndc, "coxph(Surv(tstart, tstop, status) ~ treat + age + strata(hos.cat) + cluster(id), data = cgd)",
                     list(formula = "Surv(tstart, tstop, status) ~ C(treat) + age + strata(hos.cat) + cluster(id)",
                          data = "cgd_center_counting")))

## --------------------------------------------------------------------------- retinopathy: cluster, Breslow
ret <- read_csv_plain(file.path(in_dir, "retinopathy_id", "data.csv"))
ndr <- data.frame(trt = c(0, 1, 1), type = factor(c("adult", "juvenile", "adult"), levels = levels(ret$type)),
                  risk = c(6, 9, 12), futime = c(10, 30, 50), status = c(0, 1, 1))
fit <- coxph(Surv(futime, status) ~ trt + type + risk + cluster(id), data = ret, ties = "breslow")
write_case("retinopathy_cluster_breslow",
           summarise(fit, ret, ndr, "coxph(Surv(futime, status) ~ trt + type + risk + cluster(id), data = retinopathy, ties = 'breslow')",
                     list(formula = "Surv(futime, status) ~ trt + C(type) + risk + cluster(id)",
                          data = "retinopathy_id", ties = "breslow")))

## --------------------------------------------------------------------------- two strata variables; curves for every stratum
nds <- data.frame(risk = c(6, 9, 12), futime = c(10, 30, 50), status = c(1, 1, 0))
fit <- coxph(Surv(futime, status) ~ risk + strata(trt, type), data = ret)
## predict needs the strata variables in newdata; survfit without them (below) gives every
## stratum's curve at each pattern
nds2 <- data.frame(risk = c(6, 9, 12), trt = c(0, 1, 1), type = factor(c("adult", "juvenile", "adult"), levels = levels(ret$type)),
                   futime = c(10, 30, 50), status = c(1, 1, 0))
res <- summarise(fit, ret, nds2, "coxph(Surv(futime, status) ~ risk + strata(trt, type), data = retinopathy)",
                 list(formula = "Surv(futime, status) ~ risk + strata(trt, type)", data = "retinopathy_id"))
res$newdata_unstratified <- nds
res$survfit_all_strata <- curves(survfit(fit, newdata = nds), 3)
write_case("retinopathy_two_strata", res)

## --------------------------------------------------------------------------- time-varying covariate, Breslow, robust by subject
tv <- read_csv_plain(file.path(in_dir, "sim_timevarying_breslow", "data.csv"))
ndt <- data.frame(x = c(-1, 0, 1.5), tstart = c(0, 0.5, 1), tstop = c(1, 2, 3), status = c(1, 0, 1))
fit <- coxph(Surv(tstart, tstop, status) ~ x + cluster(id), data = tv, ties = "breslow")
write_case("timevarying_cluster_breslow",
           summarise(fit, tv, ndt, "coxph(Surv(tstart, tstop, status) ~ x + cluster(id), data = tv, ties = 'breslow')",
                     list(formula = "Surv(tstart, tstop, status) ~ x + cluster(id)", data = "sim_timevarying_breslow",
                          ties = "breslow")))

## --------------------------------------------------------------------------- coxme: the fixed part's survival curves
## interlace's CoxMEResult.survfit estimates the baseline hazard with the frailties in the
## linear predictor (as an offset) and gives the curves at x'beta with frailty 0, with coxme's
## vcov of beta in the variance.  In R: coxph with the frailties as an offset, beta fixed at
## coxme's (iter.max = 0), its var replaced by vcov(coxme), survfit at newdata (offset 0).
if (requireNamespace("coxme", quietly = TRUE)) {
  suppressPackageStartupMessages(library(coxme))
  expected_from_curves <- function(sf, nd) {
    k <- rep(seq_along(sf$strata), sf$strata)
    sapply(seq_len(nrow(nd)), function(i) {
      h <- function(t) approx(c(0, sf$time[k == i]), c(0, sf$cumhaz[k == i]), t, method = "constant", f = 0,
                              rule = 2)$y
      h(nd$tstop[i]) - h(nd$tstart[i])
    })
  }
  cm <- coxme(Surv(tstart, tstop, status) ~ treat + strata(hos.cat) + (1 | id), data = cgd)
  cgd$fr <- ranef(cm)$id[as.character(cgd$id)]
  fit <- coxph(Surv(tstart, tstop, status) ~ treat + strata(hos.cat) + offset(fr), data = cgd,
               init = fixef(cm), control = coxph.control(iter.max = 0))
  fit$var <- as.matrix(vcov(cm))
  ndm <- data.frame(treat = factor(c("placebo", "rIFN-g", "placebo"), levels = levels(cgd$treat)),
                    hos.cat = factor(c("US:NIH", "US:other", "Europe:other"), levels = levels(cgd$hos.cat)),
                    fr = 0, tstart = c(0, 100, 0), tstop = c(150, 300, 250), status = c(1, 0, 1))
  write_case("coxme_cgd_strata_survfit", list(
    r_call = "coxme(Surv(tstart, tstop, status) ~ treat + strata(hos.cat) + (1 | id), data = cgd); survfit of coxph(... + offset(frailty), init = fixef, iter.max = 0) with var = vcov(coxme)",
    python_call = list(formula = "Surv(tstart, tstop, status) ~ C(treat) + strata(hos.cat)", random = vec("(1|id)"),
                       data = "cgd_center_counting"),
    packages = c(packages, list(coxme = as.character(packageVersion("coxme")))),
    coef = as.list(fixef(cm)),
    newdata = ndm[, c("treat", "hos.cat", "tstart", "tstop", "status")],
    # expected events of the new rows from their curves: cumhaz(stop) - cumhaz(start).  (predict.coxph
    # with newdata computes exp(x'b) + offset instead of exp(x'b + offset) and leaves the fit's mean
    # offset in the baseline, which is off by exp(mean offset) for a model with an offset.)
    predict_new = list(expected = expected_from_curves(survfit(fit, newdata = ndm), ndm)),
    expected_fitted = first(predict(fit, type = "expected")),
    survfit = curves(survfit(fit, newdata = ndm), 3)))
} else {
  message("coxme not found (set R_LIBS=/work/shared/r-lib): coxme_cgd_strata_survfit.json not written")
}
