package org.outpost.field.shared

import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import org.outpost.core.BeneficiarySummary
import org.outpost.core.DueEntitlement
import org.outpost.core.OutpostInterface

data class SearchState(
    val query: String = "",
    val results: List<BeneficiarySummary> = emptyList(),
    /** Shown while the query is empty: who is due today. */
    val dueToday: List<DueEntitlement> = emptyList(),
    val error: String? = null,
)

/** Beneficiary search (name prefix, card number or QR, id) and the day's list. */
class SearchModel(private val core: OutpostInterface) {
    private val _state = MutableStateFlow(SearchState())
    val state: StateFlow<SearchState> = _state

    fun loadDue(day: String? = null) {
        val due = attempt { core.due(day, 200u) }
        _state.value = _state.value.copy(dueToday = due.getOrDefault(emptyList()), error = due.exceptionOrNull()?.message)
    }

    fun search(query: String) {
        if (query.isBlank()) {
            _state.value = _state.value.copy(query = query, results = emptyList(), error = null)
            return
        }
        val found = attempt { core.search(query, 50u) }
        _state.value = _state.value.copy(query = query, results = found.getOrDefault(emptyList()), error = found.exceptionOrNull()?.message)
    }
}
