#!/usr/bin/env Rscript
## make_emmeans_reference.R -- emmeans 1.8.4-1 marginal means and contrasts on the shared
## cases (analysis_cases.R) for interlace/tests/test_emmeans.py.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_emmeans_reference.R
## It writes interlace/tests/reference/analysis/emmeans.json: a list of checks, each with
##   case     the case (its python block is in python[case])
##   call     what interlace does: emmeans arguments (specs, by, at, df_method, type, mode) and
##            an optional contrast (method, adjust, ref, by) and the summary's infer / adjust
##   rows     summary(..., infer = c(TRUE, TRUE)) rows with the estimate column renamed
##            "estimate" (emmean, prob, rate, odds.ratio, ratio, cumprob, ...), lower/upper for
##            the interval columns, "stat" for t.ratio / z.ratio
## Linear mixed models: lmer.df = "kenward-roger" (emmeans' default) and "satterthwaite".
source("interlace/tests/reference/reference_helpers.R")
source("interlace/tests/reference/analysis_cases.R")
suppressPackageStartupMessages(library(emmeans))
emm_options(lmerTest.limit = 1e5, pbkrtest.limit = 1e5)

fits <- lapply(cases[c("sleepstudy", "penicillin", "factorial", "cbpp", "grouseticks", "wine")], fit_case)
checks <- list()
tab <- function(s) {
  s <- as.data.frame(s)
  est <- intersect(c("emmean", "estimate", "prob", "rate", "response", "odds.ratio", "ratio", "cumprob"), names(s))[1]
  names(s)[names(s) == est] <- "estimate"
  names(s)[names(s) %in% c("lower.CL", "asymp.LCL")] <- "lower"
  names(s)[names(s) %in% c("upper.CL", "asymp.UCL")] <- "upper"
  names(s)[names(s) %in% c("t.ratio", "z.ratio")] <- "stat"
  keep <- intersect(c("estimate", "SE", "df", "lower", "upper", "stat", "p.value"), names(s))
  lapply(seq_len(nrow(s)), function(i) lapply(s[i, keep], function(v) if (is.infinite(v)) "Inf" else v))
}
add <- function(case, call, obj, level = 0.95, adjust = NULL) {
  s <- if (is.null(adjust)) summary(obj, infer = c(TRUE, TRUE), level = level) else
    summary(obj, infer = c(TRUE, TRUE), level = level, adjust = adjust)
  checks[[length(checks) + 1]] <<- list(case = case, call = call, rows = tab(s))
}
em <- function(case, specs, df = NULL, ...) {
  args <- list(fits[[case]], specs, ...)
  if (!is.null(df)) args$lmer.df <- df
  do.call(emmeans, args)
}

for (df in c("kenward-roger", "satterthwaite")) {
  e <- em("sleepstudy", ~ Days, df, at = list(Days = c(0, 4.5, 9)))
  add("sleepstudy", list(specs = "Days", at = list(Days = c(0, 4.5, 9)), df_method = df), e)
  add("sleepstudy", list(specs = "Days", at = list(Days = c(0, 4.5, 9)), df_method = df, contrast = "pairwise"),
      pairs(e))
  e <- em("penicillin", ~ sample, df)
  add("penicillin", list(specs = "sample", df_method = df), e)
  for (adj in c("tukey", "holm", "bonferroni", "sidak", "scheffe", "fdr", "none"))
    add("penicillin", list(specs = "sample", df_method = df, contrast = "pairwise", adjust = adj), pairs(e),
        adjust = adj)
  add("penicillin", list(specs = "sample", df_method = df, contrast = "trt.vs.ctrl"), contrast(e, "trt.vs.ctrl"))
  add("penicillin", list(specs = "sample", df_method = df, contrast = "trt.vs.ctrl", ref = 2),
      contrast(e, "trt.vs.ctrl", ref = 3))
  add("penicillin", list(specs = "sample", df_method = df, contrast = "eff"), contrast(e, "eff"))
  e <- em("factorial", ~ A | B, df)
  add("factorial", list(specs = "A", by = "B", df_method = df), e)
  add("factorial", list(specs = "A", by = "B", df_method = df, contrast = "pairwise"), pairs(e))
  add("factorial", list(specs = "A", by = "B", df_method = df, contrast = "revpairwise"), contrast(e, "revpairwise"))
  e <- em("factorial", ~ A, df)
  add("factorial", list(specs = "A", df_method = df), e)
  add("factorial", list(specs = "A", df_method = df, contrast = "pairwise"), pairs(e))
  add("factorial", list(specs = "A", df_method = df, contrast = "consec", adjust = "holm"),
      contrast(e, "consec"), adjust = "holm")
  add("factorial", list(specs = "A", df_method = df, contrast = "poly"), contrast(e, "poly"))
  add("factorial", list(specs = "A", df_method = df,
                        contrast = list(`a1 vs rest` = c(1, -0.5, -0.5), `a2 - a3` = c(0, 1, -1))),
      contrast(e, list(`a1 vs rest` = c(1, -0.5, -0.5), `a2 - a3` = c(0, 1, -1))))
  e <- em("factorial", ~ A * B, df)
  add("factorial", list(specs = "A * B", df_method = df), e)
  add("factorial", list(specs = "A * B", df_method = df, contrast = "pairwise"), pairs(e))
  add("factorial", list(specs = "B", df_method = df, level = 0.9), em("factorial", ~ B, df), level = 0.9)
}
e <- em("cbpp", ~ period)
add("cbpp", list(specs = "period"), e)
add("cbpp", list(specs = "period", contrast = "pairwise"), pairs(e))
e <- em("cbpp", ~ period, type = "response")
add("cbpp", list(specs = "period", type = "response"), e)
add("cbpp", list(specs = "period", type = "response", contrast = "pairwise"), pairs(e))
add("cbpp", list(specs = "period", type = "response", contrast = "trt.vs.ctrl"), contrast(e, "trt.vs.ctrl"))
e <- em("grouseticks", ~ YEAR, type = "response")
add("grouseticks", list(specs = "YEAR", type = "response"), e)
add("grouseticks", list(specs = "YEAR", type = "response", contrast = "pairwise"), pairs(e))
e <- em("grouseticks", ~ YEAR | cHEIGHT, at = list(cHEIGHT = c(-50, 50)))
add("grouseticks", list(specs = "YEAR", by = "cHEIGHT", at = list(cHEIGHT = c(-50, 50))), e)
e <- em("wine", ~ temp)
add("wine", list(specs = "temp"), e)
add("wine", list(specs = "temp", contrast = "pairwise"), pairs(e))
e <- em("wine", ~ temp * contact)
add("wine", list(specs = "temp * contact"), e)
add("wine", list(specs = "temp * contact", contrast = "pairwise"), pairs(e))
add("wine", list(specs = "temp", by = "cut", mode = "cum.prob"), em("wine", ~ temp | cut, mode = "cum.prob"))
add("wine", list(specs = "rating", by = "temp", mode = "prob"), em("wine", ~ rating | temp, mode = "prob"))
add("wine", list(specs = "temp", by = "cut", mode = "linear.predictor"),
    em("wine", ~ temp | cut, mode = "linear.predictor"))

out <- list(python = lapply(cases[names(fits)], function(cs) cs$python), checks = checks)
write_ref(out, file.path(ana_dir, "emmeans.json"))
cat(length(checks), "checks\n")
