#!/usr/bin/env Rscript
## make_drop1_reference.R -- drop1 (lmerTest's F tests, lme4's likelihood-ratio tests)
## and update() on the shared cases (analysis_cases.R) for interlace/tests/test_drop1.py.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_drop1_reference.R
## It writes interlace/tests/reference/analysis/drop1.json: per case
##   python      how interlace fits the case (method "REML" or "ML")
##   f           lmerTest::drop1(m, ddf = ...) rows (term, sum_sq, mean_sq, numdf, dendf, F, p)
##               for "satterthwaite" and "kenward_roger"
##   chisq       drop1(m, test = "Chisq") rows (term, npar, AIC, LRT, p; "<none>" first);
##               linear models fitted by ML (REML = FALSE) for it
## and update: per update, the new formula, logLik, fixef and theta of the updated fit.
source("interlace/tests/reference/reference_helpers.R")
source("interlace/tests/reference/analysis_cases.R")

frows <- function(a) lapply(seq_len(nrow(a)), function(k)
  list(term = rownames(a)[k], sum_sq = a[k, "Sum Sq"], mean_sq = a[k, "Mean Sq"], numdf = a[k, "NumDF"],
       dendf = a[k, "DenDF"], F = a[k, "F value"], p = a[k, "Pr(>F)"]))
crows <- function(a) lapply(seq_len(nrow(a)), function(k)
  list(term = rownames(a)[k], npar = a[k, "npar"], AIC = a[k, "AIC"], LRT = a[k, "LRT"], p = a[k, "Pr(Chi)"]))

cases$factorial_additive <- modifyList(cases$factorial, list(formula = y ~ A + B + (1 | subject)))
cases$factorial_additive$python$formula <- "y ~ A + B"

out <- list()
for (name in c("sleepstudy", "penicillin", "factorial", "factorial_additive")) {
  cs <- cases[[name]]
  m <- fit_case(cs)
  mml <- fit_case(cs, REML = FALSE)
  out[[name]] <- list(python = cs$python,
                      f = list(satterthwaite = frows(drop1(m)), kenward_roger = frows(drop1(m, ddf = "Kenward-Roger"))),
                      chisq = crows(suppressMessages(drop1(as(mml, "lmerMod"), test = "Chisq"))))
}
for (name in c("cbpp", "grouseticks")) {
  cs <- cases[[name]]
  m <- fit_case(cs)
  out[[name]] <- list(python = cs$python, chisq = crows(suppressMessages(drop1(m, test = "Chisq"))))
}

## update(): each new fit's logLik, fixef and theta
upd <- function(m, new_formula, ...) {
  u <- suppressMessages(update(m, ...))
  list(formula = deparse(formula(u)), loglik = as.numeric(logLik(u)), fixef = vec(fixef(u)),
       theta = vec(getME(u, "theta")), reml = isREML(u))
}
ss <- fit_case(cases$sleepstudy)
fac <- fit_case(cases$factorial)
cb <- fit_case(cases$cbpp)
sleep_first10 <- sleepstudy[as.integer(as.character(sleepstudy$Subject)) %in% head(sort(unique(
  as.integer(as.character(sleepstudy$Subject)))), 10), ]
assign("sleep_first10", sleep_first10, envir = globalenv())
out$update <- list(
  sleepstudy_ml = upd(ss, NULL, REML = FALSE),
  sleepstudy_no_days = upd(ss, NULL, . ~ . - Days),
  sleepstudy_uncorrelated = upd(ss, NULL, . ~ . - (Days | Subject) + (Days || Subject)),
  sleepstudy_log = upd(ss, NULL, log(Reaction) ~ .),
  sleepstudy_first10 = upd(ss, NULL, data = sleep_first10),
  factorial_additive = upd(fac, NULL, . ~ . - A:B),
  cbpp_no_period = upd(cb, NULL, . ~ . - period)
)
write_ref(out, file.path(ana_dir, "drop1.json"))
str(out$factorial)
