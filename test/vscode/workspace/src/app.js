// A file for the problem matcher test: the remote "linter" reports line 3.
function main() {
  return 0
}
module.exports = main;
