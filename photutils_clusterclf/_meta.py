"""Version and citation of the package (imported by modules that record them)."""

__version__ = "0.1.0"

__citation__ = __bibtex__ = """\
@ARTICLE{2020MNRAS.493.3178W,
       author = {{Wei}, Wei and {Huerta}, E.~A. and {Whitmore}, Bradley C. and
                 {Lee}, Janice C. and {Hannon}, Stephen and {Chandar}, Rupali and
                 {Dale}, Daniel A. and {Larson}, Kirsten L. and {Thilker}, David A. and
                 {Ubeda}, Leonardo and {Boquien}, M{\\'e}d{\\'e}ric and {Chevance}, M{\\'e}lanie and
                 {Kruijssen}, J.~M. Diederik and {Schruba}, Andreas and {Blanc}, Guillermo A. and
                 {Congiu}, Enrico},
        title = "{Deep transfer learning for star cluster classification: I. application to the PHANGS-HST survey}",
      journal = {\\mnras},
         year = 2020,
        month = apr,
       volume = {493},
       number = {3},
        pages = {3178-3193},
          doi = {10.1093/mnras/staa325},
}

@software{photutils_clusterclf,
       author = {{photutils-clusterclf developers}},
        title = {photutils-clusterclf: star-cluster candidate classification
                 in multi-band HST imaging with transfer-learned CNNs},
         year = 2026,
      version = {0.1.0},
          url = {https://github.com/photutils-clusterclf/photutils-clusterclf},
}
"""
