#!/usr/bin/env Rscript
## make_allfit_reference.R -- lme4's allFit on the shared cases (analysis_cases.R) for
## interlace/tests/test_allfit.py.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_allfit_reference.R
## It writes interlace/tests/reference/analysis/allfit.json: per case the python block and
## summary(allFit(m)): which_ok, llik, fixef (rows = optimizers), theta, sdcor, and msgs
## (the convergence messages, null when none).  The fits start from lme4's default
## (allFit refits the default-control lme4 fit with each optimizer's default settings).
source("interlace/tests/reference/reference_helpers.R")
source("interlace/tests/reference/analysis_cases.R")

out <- list()
for (name in c("sleepstudy", "factorial", "cbpp")) {
  cs <- cases[[name]]
  fit_case(cs)  # puts the data in the global environment
  d <- as.name(cs$data)
  m <- if (cs$kind == "lmer") eval(bquote(lme4::lmer(.(cs$formula), data = .(d))), globalenv()) else
    eval(bquote(lme4::glmer(.(cs$formula), data = .(d), family = .(cs$family))), globalenv())
  af <- suppressMessages(suppressWarnings(allFit(m, verbose = FALSE)))
  s <- summary(af)
  ok <- names(which(s$which.OK))
  out[[name]] <- list(python = cs$python, optimizers = vec(names(s$which.OK)), which_ok = as.list(s$which.OK),
                      llik = as.list(s$llik[ok]),
                      fixef = lapply(ok, function(o) vec(s$fixef[o, ])),
                      theta = lapply(ok, function(o) vec(s$theta[o, ])),
                      msgs = lapply(s$msgs[ok], function(x) if (is.null(x)) NULL else vec(x)))
  names(out[[name]]$fixef) <- ok
  names(out[[name]]$theta) <- ok
  cat(name, ok, "\n")
}
write_ref(out, file.path(ana_dir, "allfit.json"))
