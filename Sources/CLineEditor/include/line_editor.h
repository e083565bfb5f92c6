/*
 * Line editing for interactive tools, over Debian's libedit (its readline
 * API): editing keys, history kept in a file, tab completion of commands
 * and of their first argument. One editor per process.
 */
#ifndef LINE_EDITOR_H
#define LINE_EDITOR_H

#include <stddef.h>

/*
 * Sets up editing. `commands` complete the first word; for a line starting
 * with `argument_command` and a space, `arguments` complete the second word.
 * Loads history from `history_path` (NULL: no history file). The arrays must
 * outlive the editor.
 */
void line_editor_open(const char *program, const char *history_path,
                      const char *const *commands, size_t command_count,
                      const char *argument_command, const char *const *arguments, size_t argument_count);

/* Reads a line (without its newline) into a malloc'd string the caller frees; NULL at end of input. */
char *line_editor_read(const char *prompt);

/*
 * Like line_editor_read, and while it waits, watches `wake_fd` (made
 * non-blocking by the caller): when something can be read from it, drains it
 * and calls `on_wake(context)`, which may print whole lines (ending in "\r\n",
 * the terminal is in raw mode) after hiding the line being edited with
 * "\r\033[K"; it returns non-zero when it printed, and the prompt and the line
 * are drawn again below. When standard input is not a terminal, this is
 * line_editor_read.
 */
char *line_editor_read_watching(const char *prompt, int wake_fd, int (*on_wake)(void *), void *context);

/* Saves the history file. */
void line_editor_close(void);

#endif
