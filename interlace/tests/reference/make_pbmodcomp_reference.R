#!/usr/bin/env Rscript
## make_pbmodcomp_reference.R -- pbkrtest 0.5.2's PBmodcomp on nested pairs of the shared
## cases (analysis_cases.R) for interlace/tests/test_pbmodcomp.py.
##
## Run from the repository root (about a minute):
##     Rscript interlace/tests/reference/make_pbmodcomp_reference.R
## It writes interlace/tests/reference/analysis/pbmodcomp.json: per test the python blocks
## of the large and small models, summary(PBmodcomp(large, small, nsim, seed = 1717))$test
## (LRT, PBtest, Gamma, Bartlett, F: stat, df, ddf, p.value), nsim, npos, n_extreme and the
## simulated statistics (ref), so that the test can compare p-values within Monte-Carlo
## error and the two reference distributions with a two-sample Kolmogorov-Smirnov test.
source("interlace/tests/reference/reference_helpers.R")
source("interlace/tests/reference/analysis_cases.R")
suppressPackageStartupMessages(library(pbkrtest))

pairs <- list(
  ## the random-slope correlation of sleepstudy (LRT p about 0.8)
  sleepstudy_corr = list(large = "sleepstudy", small = Reaction ~ Days + (Days || Subject),
                         small_random = c("(Days || Subject)"), nsim = 1000),
  ## the A:B interaction of the unbalanced factorial (LRT p about 0.003)
  factorial_interaction = list(large = "factorial", small = y ~ A + B + (1 | subject), small_formula = "y ~ A + B",
                               nsim = 1000),
  ## cbpp: the period effect, a binomial GLMM (LRT p about 1e-5)
  cbpp_period = list(large = "cbpp", small = cbind(incidence, size - incidence) ~ 1 + (1 | herd),
                     small_formula = "cbind(incidence, size - incidence) ~ 1", nsim = 300)
)
out <- list()
for (nm in names(pairs)) {
  pr <- pairs[[nm]]
  cs <- cases[[pr$large]]
  lg <- fit_case(cs)
  sm <- fit_case(cs, formula = pr$small)
  set.seed(1717)
  pb <- suppressWarnings(suppressMessages(PBmodcomp(lg, sm, nsim = pr$nsim, seed = 1717)))
  s <- summary(pb)
  py_small <- cs$python
  if (!is.null(pr$small_formula)) py_small$formula <- pr$small_formula
  if (!is.null(pr$small_random)) py_small$random <- vec(pr$small_random)
  tst <- s$test
  out[[nm]] <- list(large = cs$python, small = py_small, nsim = pr$nsim,
                    npos = unname(s$samples["npos"]), n_extreme = s$n.extreme,
                    test = lapply(split(tst, rownames(tst)), as.list), ref = vec(pb$ref))
  cat(nm, unlist(tst["PBtest", ]), "\n")
}
write_ref(out, file.path(ana_dir, "pbmodcomp.json"))
