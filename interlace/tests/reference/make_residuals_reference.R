#!/usr/bin/env Rscript
## make_residuals_reference.R -- residuals of every type and level, from lme4 and nlme.
##
## Generated with: R 4.2.2, lme4 1.1-31, nlme 3.1-162, jsonlite 1.8.4 (Debian packages).
## Run from the repository root:
##     Rscript interlace/tests/reference/make_residuals_reference.R
## It writes interlace/tests/reference/residuals/<case>.json with, per case, the R call and
## the residual vectors (data row order):
##   lme4 (lmer/glmer): residuals(m, type = t) for every type lme4 has, and with scaled = TRUE
##     ("<type>_scaled"); "marginal_response" = y - X beta (lme4 has no level-0 residuals,
##     so this is model.response - X %*% fixef);
##   nlme (lme with corAR1, gls with varIdent): residuals(m, level = l, type = t) for
##     level 0 (marginal) and 1 (conditional), type response / pearson / normalized.
## Data: the CSVs the other reference scripts wrote (interlace/datasets/data,
## interlace/tests/reference/data), read back as the Python tests read them.
suppressPackageStartupMessages({library(lme4); library(nlme); library(jsonlite)})
if (!file.exists("interlace/tests/reference/make_residuals_reference.R")) stop("run from the repository root")
out <- "interlace/tests/reference/residuals"
dir.create(out, showWarnings = FALSE, recursive = TRUE)
v <- function(x) I(unname(as.numeric(x)))
save <- function(case, call, res) {
  write_json(c(list(case = case, r_call = call,
                    versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                                    lme4 = as.character(packageVersion("lme4")),
                                    nlme = as.character(packageVersion("nlme")))), res),
             file.path(out, paste0(case, ".json")), digits = NA, auto_unbox = TRUE, pretty = TRUE)
}
ctrl <- lmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12))

## sleepstudy lmer
ss <- read.csv("interlace/datasets/data/sleepstudy.csv"); ss$Subject <- factor(ss$Subject)
m <- lmer(Reaction ~ Days + (Days | Subject), ss, control = ctrl)
res <- list()
for (t in c("response", "pearson", "deviance", "working")) {
  res[[t]] <- v(residuals(m, type = t)); res[[paste0(t, "_scaled")]] <- v(residuals(m, type = t, scaled = TRUE))
}
res$marginal_response <- v(ss$Reaction - model.matrix(m) %*% fixef(m))
res$hat <- v(hatvalues(m))
res$sigma <- sigma(m)
save("sleepstudy_lmer", "lmer(Reaction ~ Days + (Days | Subject), sleepstudy)", res)

## cbpp glmer (binomial, proportions with weights)
cb <- read.csv("interlace/datasets/data/cbpp.csv"); cb$herd <- factor(cb$herd); cb$period <- factor(cb$period)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, family = binomial,
           control = glmerControl(tolPwrss = 1e-13, optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10)))
res <- list()
for (t in c("response", "pearson", "deviance", "working")) res[[t]] <- v(residuals(g, type = t))
eta0 <- model.matrix(g) %*% fixef(g)
res$marginal_response <- v(cb$incidence / cb$size - plogis(eta0))
save("cbpp_glmer", "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)", res)

## nlme: lme with AR(1) errors and gls with varIdent
ov <- read.csv("interlace/tests/reference/data/nlme_ovary.csv", colClasses = c(Mare = "factor"))
lc <- lmeControl(msMaxIter = 1000, tolerance = 1e-10, msTol = 1e-12, niterEM = 100)
## nlme applies the correlation factor of its group-sorted internal order to residuals kept
## in data order: "normalized" residuals come out wrong near group boundaries unless the
## data are already sorted by the grouping factor's levels ("1" < "10" < "11" < "2" ...).
## So the model is fitted on the rows sorted that way (a stable sort) and the residuals
## mapped back to data order; the unsorted fit's values are kept as *_nlme_unsorted.
ord <- order(ov$Mare)
l <- lme(follicles ~ s1 + c1, ov[ord, ], random = ~ 1 | Mare, correlation = corAR1(), control = lc)
l0 <- lme(follicles ~ s1 + c1, ov, random = ~ 1 | Mare, correlation = corAR1(), control = lc)
stopifnot(abs(logLik(l) - logLik(l0)) < 1e-8)
res <- list()
for (lev in 0:1) for (t in c("response", "pearson", "normalized")) {
  r <- numeric(nrow(ov)); r[ord] <- residuals(l, level = lev, type = t)
  res[[paste0("level", lev, "_", t)]] <- v(r)
  res[[paste0("level", lev, "_", t, "_nlme_unsorted")]] <- v(residuals(l0, level = lev, type = t))
}
save("ovary_lme_ar1", "lme(follicles ~ s1 + c1, Ovary, random = ~ 1 | Mare, correlation = corAR1())", res)
or <- read.csv("interlace/tests/reference/data/nlme_orthodont.csv", colClasses = c(Subject = "factor", Sex = "factor"))
gl <- gls(distance ~ age * Sex, or, weights = varIdent(form = ~ 1 | Sex),
          control = glsControl(msMaxIter = 1000, tolerance = 1e-10, msTol = 1e-12))
res <- list()
for (t in c("response", "pearson", "normalized")) res[[paste0("level0_", t)]] <- v(residuals(gl, type = t))
save("orthodont_gls_varident", "gls(distance ~ age * Sex, Orthodont, weights = varIdent(form = ~ 1 | Sex))", res)
cat("written to", out, "\n")
