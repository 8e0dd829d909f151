#!/usr/bin/env Rscript
## make_r2_reference.R -- performance's r2_nakagawa and icc (and insight's get_variance
## behind them) on the shared cases (analysis_cases.R) for interlace/tests/test_r2.py.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_r2_reference.R
## It writes interlace/tests/reference/analysis/r2_<case>.json with
##   python     how interlace fits the case
##   r2         performance::r2_nakagawa(m): conditional, marginal (NA -> null)
##   icc        performance::icc(m): adjusted, unadjusted (null when singular)
##   variances  insight::get_variance(m): var.fixed, var.random, var.residual,
##              var.distribution, var.dispersion, var.intercept (per group)
##   null_intercept  for log-link counts: the intercept of the null model (response ~ the
##              random terms, refitted as insight::null_model does) behind the
##              distribution-specific variance log1p(1 / exp(intercept))
source("interlace/tests/reference/reference_helpers.R")
source("interlace/tests/reference/analysis_cases.R")
suppressPackageStartupMessages(library(performance))

for (name in c("sleepstudy", "penicillin", "penicillin_crossed", "factorial", "cbpp", "grouseticks", "gamma")) {
  cs <- cases[[name]]
  m <- fit_case(cs)
  r2 <- suppressWarnings(r2_nakagawa(m))
  ic <- suppressWarnings(icc(m))
  v <- suppressWarnings(insight::get_variance(m))
  ni <- NULL
  if (cs$kind == "glmer" && family(m)$link == "log") ni <- unname(fixef(insight::null_model(m))[1])
  out <- list(python = cs$python, r_formula = deparse(cs$formula),
              r2 = list(conditional = unname(r2$R2_conditional), marginal = unname(r2$R2_marginal)),
              icc = if (is.list(ic)) list(adjusted = ic$ICC_adjusted, unadjusted = ic$ICC_unadjusted) else NULL,
              variances = lapply(v[c("var.fixed", "var.random", "var.residual", "var.distribution",
                                     "var.dispersion")], unname),
              var_intercept = as.list(v$var.intercept), null_intercept = ni)
  write_ref(out, file.path(ana_dir, paste0("r2_", name, ".json")))
  cat(name, unlist(out$r2), unlist(out$icc), "\n")
}
