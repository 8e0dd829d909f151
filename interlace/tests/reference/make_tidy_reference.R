#!/usr/bin/env Rscript
## make_tidy_reference.R -- broom.mixed's tidy / glance / augment on the shared cases
## (analysis_cases.R) for interlace/tests/test_tidy.py.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_tidy_reference.R
## It writes interlace/tests/reference/analysis/tidy_<case>.json with
##   python   how interlace fits the case
##   tidy     broom.mixed::tidy(m, conf.int = TRUE) rows (effect, group, term, estimate,
##            std.error, statistic, df, p.value, conf.low, conf.high; NA -> null); lmer fits
##            through lmerTest (Satterthwaite df, t intervals)
##   ran_vals tidy(m, effects = "ran_vals") rows (group, level, term, estimate, std.error)
##   glance   broom.mixed::glance(m)
##   augment  augment(m) columns .fitted .resid .hat .cooksd .fixed .mu .wtres
source("interlace/tests/reference/reference_helpers.R")
source("interlace/tests/reference/analysis_cases.R")
suppressPackageStartupMessages(library(broom.mixed))

rows <- function(df) lapply(seq_len(nrow(df)), function(i) as.list(df[i, , drop = FALSE]))
for (name in c("sleepstudy", "penicillin", "penicillin_crossed", "factorial", "cbpp", "grouseticks")) {
  cs <- cases[[name]]
  m <- fit_case(cs)
  td <- as.data.frame(suppressWarnings(tidy(m, conf.int = TRUE)))
  rv <- as.data.frame(tidy(m, effects = "ran_vals"))
  au <- as.data.frame(suppressWarnings(augment(m)))
  out <- list(python = cs$python, r_formula = deparse(cs$formula), tidy = rows(td),
              ran_vals = rows(rv[, c("group", "level", "term", "estimate", "std.error")]),
              glance = as.list(as.data.frame(glance(m))),
              augment = lapply(au[, c(".fitted", ".resid", ".hat", ".cooksd", ".fixed", ".mu", ".wtres")], vec))
  write_ref(out, file.path(ana_dir, paste0("tidy_", name, ".json")))
  cat(name, "\n")
}
