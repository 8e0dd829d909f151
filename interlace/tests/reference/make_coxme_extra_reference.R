#!/usr/bin/env Rscript
## make_coxme_extra_reference.R -- coxme reference values for fits the copied shared cases
## (reference/coxme/, made once elsewhere) do not cover; used by test_coxme_reference.py
## and test_coxme.py.
##
## Generated with: R 4.2.2 Patched (2022-11-10 r83330), coxme 2.2-22 and bdsmatrix 1.3-7
## (built from CRAN sources into /work/shared/r-lib), survival 3.5-3, jsonlite 1.8.4.
##
## Run from the repository root (coxme is not a Debian package; point R_LIBS at it):
##     R_LIBS=/work/shared/r-lib Rscript interlace/tests/reference/make_coxme_extra_reference.R
##
## It reads the data of the copied cases (reference/coxme/<case>/data.csv) and writes
## interlace/tests/reference/coxme_extra/<case>.json:
##
##   retinopathy_exact     Surv(futime, status) ~ trt + type + risk + (1 | id) with coxme's
##                         sparse approximation off (sparse = c(1000, .02): 197 levels < 1000,
##                         so the exact Hessian of the penalized partial likelihood is used);
##                         interlace: sparse=None.  "coxme" is coxme's own fit, "optimum" the
##                         same at tight controls (below).
##   <case>_optimum        for the copied cases retinopathy_id, sim_nested, sim_slope: coxme
##                         at tight controls.  coxme's default optimizer (optim BFGS, reltol
##                         1e-5) stops short of the maximum of the integrated likelihood, by
##                         up to 2e-3 relative in sim_slope's variances; interlace's
##                         method="bobyqa" maximizes it, and is compared to these.
##   lung_frailty_only     Surv(time, status) ~ (1 | inst): no fixed effects (a near-zero
##                         frailty variance, as lung_inst).
##
## Tight controls: coxme.control(optpar = list(method = "BFGS", control = list(reltol = 1e-10)),
## eps = 1e-12 (inner Newton loop), toler.chol = 1e-14), each below the next as coxme asks.
##
## JSON fields (jsonlite, digits = NA): r_call, python_call, packages, coef, se, vcov,
## variance (coxme's VarCorr of the one term: variances on the diagonal, correlations off
## it), loglik (null, integrated, penalized), df (integrated, penalized), frailties
## (levels, values; for (1 + x | g) the intercepts then the slopes) -- for
## retinopathy_exact under "coxme" and "optimum".

suppressPackageStartupMessages({
  library(coxme)
  library(jsonlite)
})

if (!file.exists("interlace/tests/reference/make_coxme_extra_reference.R"))
  stop("run this script from the repository root")
source("interlace/tests/reference/reference_helpers.R")

in_dir <- "interlace/tests/reference/coxme"
out_dir <- "interlace/tests/reference/coxme_extra"
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

packages <- list(R = R.version.string, coxme = as.character(packageVersion("coxme")),
                 survival = as.character(packageVersion("survival")))
mat <- function(x) { x <- as.matrix(x); dimnames(x) <- NULL; x }

tight <- function(...) coxme.control(eps = 1e-12, toler.chol = 1e-14,
                                     optpar = list(method = "BFGS", control = list(reltol = 1e-10, maxit = 1000)), ...)

summarise <- function(m, term, full = TRUE) {
  ll <- m$loglik
  re <- ranef(m)[[term]]
  vc <- VarCorr(m)[[term]]
  out <- list(coef = as.list(fixef(m)),
              variance = if (length(vc) == 1) unname(vc[[1]]) else mat(vc),
              loglik = list(null = ll[["NULL"]], integrated = ll[["Integrated"]], penalized = ll[["Penalized"]]),
              frailties = list(levels = vec(if (is.matrix(re)) rownames(re) else names(re)), values = vec(re)))
  if (full) {
    out$se <- as.list(setNames(sqrt(diag(as.matrix(vcov(m)))), names(fixef(m))))
    out$vcov <- mat(vcov(m))
    out$df <- list(integrated = m$df[1], penalized = m$df[2])
  }
  out
}

## --------------------------------------------------------------------------- retinopathy, exact
ret <- read_csv_plain(file.path(in_dir, "retinopathy_id", "data.csv"))
fml <- Surv(futime, status) ~ trt + type + risk + (1 | id)
m <- coxme(fml, data = ret, sparse = c(1000, .02))
stopifnot(length(fixef(m)) == 3)

m_opt <- coxme(fml, data = ret, control = tight(sparse = c(1000, .02)))

write_json(list(case = "retinopathy_exact",
                r_call = "coxme(Surv(futime, status) ~ trt + type + risk + (1 | id), data = retinopathy, sparse = c(1000, .02))",
                data = "interlace/tests/reference/coxme/retinopathy_id/data.csv",
                python_call = list(formula = "Surv(futime, status) ~ trt + C(type) + risk", random = vec("(1|id)"),
                                   sparse = NULL),
                packages = packages,
                coxme = summarise(m, "id"),
                optimum = summarise(m_opt, "id")),
           file.path(out_dir, "retinopathy_exact.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null", null = "null")

## --------------------------------------------------------------------------- the copied cases at tight controls
optimum_cases <- list(
  retinopathy_id = list(formula = Surv(futime, status) ~ trt + type + risk + (1 | id), term = "id",
                        r_call = "coxme(Surv(futime, status) ~ trt + type + risk + (1 | id), data = retinopathy, control = tight)"),
  sim_nested = list(formula = Surv(time, status) ~ x1 + x2 + (1 | centre/patient), term = NULL,
                    r_call = "coxme(Surv(time, status) ~ x1 + x2 + (1 | centre/patient), data = sim, control = tight)"),
  sim_slope = list(formula = Surv(time, status) ~ x + (1 + x | g), term = "g",
                   r_call = "coxme(Surv(time, status) ~ x + (1 + x | g), data = sl, control = tight)")
)
for (case in names(optimum_cases)) {
  cs <- optimum_cases[[case]]
  dat <- read_csv_plain(file.path(in_dir, case, "data.csv"))
  m <- coxme(cs$formula, data = dat, control = tight())
  ll <- m$loglik
  vcs <- lapply(VarCorr(m), function(vc) if (length(vc) == 1) I(matrix(unname(vc[[1]]), 1, 1)) else mat(vc))
  write_json(list(case = paste0(case, "_optimum"), r_call = cs$r_call,
                  data = file.path(in_dir, case, "data.csv"), packages = packages,
                  coef = as.list(fixef(m)), se = as.list(setNames(sqrt(diag(as.matrix(vcov(m)))), names(fixef(m)))),
                  variance_components = vcs,
                  loglik = list(null = ll[["NULL"]], integrated = ll[["Integrated"]], penalized = ll[["Penalized"]])),
             file.path(out_dir, paste0(case, "_optimum.json")),
             digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null", null = "null")
}

## --------------------------------------------------------------------------- lung, no fixed effects
lung <- read_csv_plain(file.path(in_dir, "lung_inst", "data.csv"))
m <- coxme(Surv(time, status) ~ (1 | inst), data = lung)
s <- summarise(m, "inst", full = FALSE)
s$df <- list(integrated = m$df[1], penalized = m$df[2])
write_json(c(list(case = "lung_frailty_only",
                  r_call = "coxme(Surv(time, status) ~ (1 | inst), data = lung)",
                  data = "interlace/tests/reference/coxme/lung_inst/data.csv",
                  python_call = list(formula = "Surv(time, status) ~ 1 + (1 | inst)"),
                  packages = packages),
             s),
           file.path(out_dir, "lung_frailty_only.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null", null = "null")
