"""Research protocols behind the reports, which may import any package: the gallery study (`landmark gallery
evaluate`), the comparison of rejection scores (`landmark rejection`) and of runs side by side (`landmark compare`).
Nothing in the product imports them."""
